//! The configuration rules, each from a map of variables.

use super::*;

const STRONG: &str = "0123456789abcdef0123456789abcdef-strong";

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_vars(&vars(pairs)).expect("valid configuration")
}

fn error(pairs: &[(&str, &str)]) -> ConfigError {
    Config::from_vars(&vars(pairs)).expect_err("invalid configuration")
}

#[test]
fn defaults_match_the_spec() {
    let c = config(&[]);
    assert_eq!(c.port, 8080);
    assert_eq!(c.environment, Environment::Development);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.database, None);
    assert_eq!(c.jwt_expiry_hours, 24);
    assert_eq!(c.ws, WsSettings::default());
    assert_eq!(c.ws.max_message_size, 4096);
    assert_eq!(c.ws.ping_period, Duration::from_secs(54));
    assert_eq!(c.ws.pong_wait, Duration::from_secs(60));
    assert_eq!(c.ws.write_wait, Duration::from_secs(10));
    assert_eq!(c.ws.rate_limit, 10);
    assert_eq!(c.ws.replay_limit, 1000);
    assert_eq!(c.ws.presence_max_subscriptions, 1000);
    assert_eq!(c.ws.max_connections_per_user, 16);
    assert_eq!(c.message_rate_limit, 10);
    assert!(c.cors_allowed_origins.is_empty());
    assert_eq!(c.bcrypt_cost, 12);
    assert_eq!(c.redis, None);
    assert_eq!(c.auth_rate_limit, 20);
    assert!(c.trusted_proxies.is_empty());
    assert!(c.metrics_enabled);
}

#[test]
fn every_variable_is_read() {
    let c = config(&[
        ("PORT", "9000"),
        ("ENVIRONMENT", "production"),
        ("LOG_LEVEL", "debug,actix_web=warn"),
        ("LOG_FORMAT", "json"),
        ("JWT_SECRET", STRONG),
        ("JWT_EXPIRY_HOURS", "2"),
        ("WEBSOCKET_READ_BUFFER_SIZE", "2048"),
        ("WEBSOCKET_WRITE_BUFFER_SIZE", "4096"),
        ("WEBSOCKET_MAX_MESSAGE_SIZE", "8192"),
        ("WEBSOCKET_PING_PERIOD", "500ms"),
        ("WEBSOCKET_PONG_WAIT", "1m"),
        ("WEBSOCKET_WRITE_WAIT", "3s"),
        ("WEBSOCKET_RATE_LIMIT", "0"),
        ("WEBSOCKET_REPLAY_LIMIT", "250"),
        ("PRESENCE_MAX_SUBSCRIPTIONS", "50"),
        ("WEBSOCKET_MAX_CONNECTIONS_PER_USER", "0"),
        ("MESSAGE_RATE_LIMIT", "3"),
        (
            "CORS_ALLOWED_ORIGINS",
            "https://a.example, http://localhost:3000/",
        ),
        ("BCRYPT_COST", "10"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_PREFIX", "chat-eu"),
        ("REDIS_PRESENCE_HEARTBEAT", "2s"),
        ("REDIS_PRESENCE_TTL", "7s"),
        ("AUTH_RATE_LIMIT", "0"),
        ("TRUSTED_PROXIES", "127.0.0.1, ::1"),
        ("METRICS_ENABLED", "false"),
    ]);
    assert_eq!(c.port, 9000);
    assert_eq!(c.environment, Environment::Production);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.jwt_secret.as_bytes(), STRONG.as_bytes());
    assert!(!c.jwt_secret_generated);
    assert_eq!(c.jwt_expiry_hours, 2);
    assert_eq!(c.ws.max_message_size, 8192);
    assert_eq!(c.ws.ping_period, Duration::from_millis(500));
    assert_eq!(c.ws.pong_wait, Duration::from_secs(60));
    assert_eq!(c.ws.write_wait, Duration::from_secs(3));
    assert_eq!(c.ws.rate_limit, 0);
    assert_eq!(c.ws.replay_limit, 250);
    assert_eq!(c.ws.presence_max_subscriptions, 50);
    assert_eq!(c.ws.max_connections_per_user, 0);
    assert_eq!(c.message_rate_limit, 3);
    assert_eq!(
        c.cors_allowed_origins,
        vec!["https://a.example", "http://localhost:3000"]
    );
    assert_eq!(c.bcrypt_cost, 10);
    let redis = c.redis.as_ref().expect("redis configured");
    assert_eq!(redis.url, "redis://127.0.0.1:6379");
    assert_eq!(redis.prefix, "chat-eu");
    assert_eq!(redis.heartbeat, Duration::from_secs(2));
    assert_eq!(redis.presence_ttl, Duration::from_secs(7));
    assert_eq!(redis.offline_bound(), Duration::from_secs(9));
    assert_eq!(c.auth_rate_limit, 0);
    assert_eq!(
        c.trusted_proxies,
        vec![
            "127.0.0.1".parse::<IpAddr>().expect("ip"),
            "::1".parse().expect("ip")
        ]
    );
    assert!(!c.metrics_enabled);
    assert!(c.http_settings().production);
}

#[test]
fn bad_values_name_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("PORT", "http"),
        ("PORT", "70000"),
        ("ENVIRONMENT", "staging"),
        ("LOG_LEVEL", "loud=[["),
        ("LOG_FORMAT", "xml"),
        ("JWT_EXPIRY_HOURS", "0"),
        ("WEBSOCKET_READ_BUFFER_SIZE", "-1"),
        ("WEBSOCKET_WRITE_BUFFER_SIZE", "big"),
        ("WEBSOCKET_MAX_MESSAGE_SIZE", "0"),
        ("WEBSOCKET_PING_PERIOD", "soon"),
        ("WEBSOCKET_PONG_WAIT", "0s"),
        ("WEBSOCKET_WRITE_WAIT", "never"),
        ("WEBSOCKET_RATE_LIMIT", "-1"),
        ("WEBSOCKET_REPLAY_LIMIT", "0"),
        ("PRESENCE_MAX_SUBSCRIPTIONS", "0"),
        ("WEBSOCKET_MAX_CONNECTIONS_PER_USER", "many"),
        ("MESSAGE_RATE_LIMIT", "-1"),
        ("CORS_ALLOWED_ORIGINS", "chat.example.com"),
        ("CORS_ALLOWED_ORIGINS", "https://a.example/path"),
        ("BCRYPT_COST", "3"),
        ("BCRYPT_COST", "32"),
        ("METRICS_ENABLED", "maybe"),
        ("REDIS_URL", "http://localhost"),
        ("REDIS_PREFIX", "two words"),
        ("REDIS_PRESENCE_HEARTBEAT", "5ms"),
        ("REDIS_PRESENCE_TTL", "5s"),
        ("AUTH_RATE_LIMIT", "-5"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("DB_PORT", "five"),
        ("DB_SSLMODE", "sometimes"),
        ("DB_POOL_SIZE", "0"),
        ("DATABASE_URL", "mysql://root@localhost/chat"),
    ];
    for (var, value) in cases {
        let err = error(&[(var, value)]);
        assert_eq!(err.var(), Some(*var), "{var}={value}: {err}");
        assert!(err.to_string().contains(var), "{err}");
        assert!(err.to_string().contains("expected"), "{err}");
    }
}

#[test]
fn redis_defaults_bound_offline_at_20_s_and_hide_the_url() {
    let c = config(&[("REDIS_URL", "redis://:hunter2@cache:6379/1")]);
    let redis = c.redis.expect("redis configured");
    assert_eq!(redis.prefix, "chat");
    assert_eq!(redis.heartbeat, Duration::from_secs(5));
    assert_eq!(redis.presence_ttl, Duration::from_secs(15));
    assert_eq!(redis.offline_bound(), Duration::from_secs(20));
    assert!(!format!("{redis:?}").contains("hunter2"));
    let err = error(&[("REDIS_URL", "redis:/:hunter2@cache")]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_database_url_is_never_echoed_in_errors() {
    let err = error(&[("DATABASE_URL", "mysql://root:hunter2@localhost/chat")]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn ping_must_come_before_the_pong_deadline() {
    let err = error(&[
        ("WEBSOCKET_PING_PERIOD", "60s"),
        ("WEBSOCKET_PONG_WAIT", "60s"),
    ]);
    assert_eq!(err.var(), Some("WEBSOCKET_PING_PERIOD"));
}

#[test]
fn the_statement_timeout_is_5s_unless_set() {
    let url = ("DATABASE_URL", "postgres://chat@db/chat");
    let db = |c: Config| c.database.expect("PostgreSQL");
    assert_eq!(db(config(&[url])).statement_timeout, Duration::from_secs(5));
    let c = config(&[url, ("DB_STATEMENT_TIMEOUT", "1s")]);
    assert_eq!(db(c).statement_timeout, Duration::from_secs(1));
    let err = error(&[url, ("DB_STATEMENT_TIMEOUT", "soon")]);
    assert_eq!(err.var(), Some("DB_STATEMENT_TIMEOUT"));
}

#[test]
fn the_request_timeout_is_10s_unless_set() {
    assert_eq!(config(&[]).http_request_timeout, Duration::from_secs(10));
    let c = config(&[("HTTP_REQUEST_TIMEOUT", "1500ms")]);
    assert_eq!(c.http_request_timeout, Duration::from_millis(1500));
    assert_eq!(
        c.http_settings().request_timeout,
        Duration::from_millis(1500)
    );
    let err = error(&[("HTTP_REQUEST_TIMEOUT", "0")]);
    assert_eq!(err.var(), Some("HTTP_REQUEST_TIMEOUT"));
}

#[test]
fn production_refuses_a_missing_secret() {
    let err = error(&[("ENVIRONMENT", "production")]);
    assert_eq!(err.var(), Some("JWT_SECRET"));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn production_refuses_a_short_secret() {
    let err = error(&[
        ("ENVIRONMENT", "production"),
        ("JWT_SECRET", "short-but-random"),
    ]);
    assert_eq!(err.var(), Some("JWT_SECRET"));
    assert!(err.to_string().contains("16 bytes"), "{err}");
    assert!(!err.to_string().contains("short-but-random"), "{err}");
}

#[test]
fn production_refuses_published_defaults() {
    for known in [
        "your-secret-key-change-this-in-production",
        "change-me",
        "CHANGE-ME",
    ] {
        let err = error(&[("ENVIRONMENT", "Production"), ("JWT_SECRET", known)]);
        assert_eq!(err.var(), Some("JWT_SECRET"));
        assert!(err.to_string().contains("default"), "{err}");
    }
}

#[test]
fn production_refuses_long_published_examples() {
    for known in [
        "your-very-strong-secret-key-here",
        "development-secret-key",
        "bench-cluster-secret-0123456789abcdef-xyz",
    ] {
        let err = error(&[("ENVIRONMENT", "production"), ("JWT_SECRET", known)]);
        assert_eq!(err.var(), Some("JWT_SECRET"));
        assert!(err.to_string().contains("published"), "{err}");
    }
}

#[test]
fn production_refuses_a_low_entropy_secret() {
    for weak in ["a".repeat(32), "ab".repeat(40), "123456789".repeat(4)] {
        let err = error(&[("ENVIRONMENT", "production"), ("JWT_SECRET", &weak)]);
        assert_eq!(err.var(), Some("JWT_SECRET"));
        assert!(err.to_string().contains("distinct characters"), "{err}");
        assert!(!err.to_string().contains(&weak), "not echoed: {err}");
    }
    let ten = "0123456789".repeat(4);
    assert!(Config::from_vars(&vars(&[
        ("ENVIRONMENT", "production"),
        ("JWT_SECRET", &ten)
    ]))
    .is_ok());
}

#[test]
fn production_accepts_a_strong_secret() {
    let c = config(&[("ENVIRONMENT", "production"), ("JWT_SECRET", STRONG)]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn development_generates_a_secret_and_warns() {
    let a = config(&[]);
    let b = config(&[("JWT_SECRET", "  ")]);
    assert!(a.jwt_secret_generated && b.jwt_secret_generated);
    assert!(a.jwt_secret.as_bytes().len() >= MIN_PRODUCTION_SECRET_BYTES);
    assert_ne!(a.jwt_secret, b.jwt_secret, "one secret per process start");
    assert!(a.warnings.iter().any(|w| w.contains("JWT_SECRET")));
    assert!(!format!("{:?}", a.jwt_secret).contains(&format!("{:?}", a.jwt_secret.as_bytes())));
}

#[test]
fn development_accepts_a_weak_secret_with_a_warning() {
    let c = config(&[("JWT_SECRET", "change-me")]);
    assert_eq!(c.jwt_secret.as_bytes(), b"change-me");
    assert!(c.warnings.iter().any(|w| w.contains("production refuses")));
}

#[test]
fn no_database_variables_means_memory() {
    assert_eq!(config(&[("DB_POOL_SIZE", "4")]).database, None);
    assert_eq!(config(&[("DATABASE_URL", "")]).database, None);
}

#[test]
fn database_url_wins_over_parts() {
    let c = config(&[
        ("DATABASE_URL", "postgres://u:p@db:5432/chat"),
        ("DB_HOST", "elsewhere"),
        ("DB_POOL_SIZE", "4"),
    ]);
    let db = c.database.expect("postgres");
    assert_eq!(db.url, "postgres://u:p@db:5432/chat");
    assert_eq!(db.pool_size, 4);
    assert!(!format!("{db:?}").contains(":p@"));
}

#[test]
fn any_db_part_selects_postgres_with_defaults_for_the_rest() {
    let c = config(&[("DB_HOST", "db.internal")]);
    let db = c.database.expect("postgres");
    assert_eq!(db.url, "postgres://postgres@db.internal:5432/chatapi");
    assert_eq!(db.pool_size, 16);

    let c = config(&[
        ("DB_USER", "chat"),
        ("DB_PASSWORD", "p@ss:w/rd"),
        ("DB_PORT", "6543"),
        ("DB_NAME", "chat"),
        ("DB_SSLMODE", "require"),
    ]);
    assert_eq!(
        c.database.expect("postgres").url,
        "postgres://chat:p%40ss%3Aw%2Frd@localhost:6543/chat?sslmode=require"
    );
}

#[test]
fn the_root_certificate_file_joins_the_url_encoded() {
    let c = config(&[
        ("DB_HOST", "db"),
        ("DB_SSLMODE", "verify-full"),
        ("DB_SSLROOTCERT", "/etc/chat/db ca.pem"),
    ]);
    assert_eq!(
        c.database.expect("postgres").url,
        "postgres://postgres@db:5432/chatapi?sslmode=verify-full&sslrootcert=%2Fetc%2Fchat%2Fdb%20ca.pem"
    );
    let c = config(&[("DB_HOST", "db"), ("DB_SSLROOTCERT", "/ca.pem")]);
    assert_eq!(
        c.database.expect("postgres").url,
        "postgres://postgres@db:5432/chatapi?sslrootcert=%2Fca.pem"
    );
}

#[test]
fn durations_accept_go_style_units_and_plain_seconds() {
    assert_eq!(parse_duration("54s"), Some(Duration::from_secs(54)));
    assert_eq!(parse_duration("54"), Some(Duration::from_secs(54)));
    assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    for bad in ["", "s", "5x", "1m30", "-1s", "ms5"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn a_star_origin_is_kept_as_is() {
    assert_eq!(
        config(&[("CORS_ALLOWED_ORIGINS", "*")]).cors_allowed_origins,
        vec!["*"]
    );
}
