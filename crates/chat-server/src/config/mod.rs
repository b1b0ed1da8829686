//! The configuration, read once at start from the environment (and `.env`
//! if present; the real environment wins). serde reads the variables into
//! typed fields (`Env`, refusing by name a value of the wrong type); the
//! rules on top (ranges, secrets, URLs, variables that depend on each other)
//! build [`Config`]. Every rule is a pure function of a map of variables, so
//! it is tested without touching the process environment.

mod env;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chat_http::WsSettings;

pub use env::parse_duration;
use env::{expected, invalid, positive, within, Env};

/// Environment variables by name.
pub type Vars = HashMap<String, String>;

/// Which kind of deployment this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// Local work: a missing JWT secret is generated per process.
    Development,
    /// A real deployment: `Secure` cookies, a strong JWT secret required.
    Production,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The HS256 signing key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A fresh random key of 64 bytes (from the OS's random source, through
    /// UUIDv4).
    fn generate() -> Self {
        let bytes = (0..4)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .collect();
        Self(bytes)
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwtSecret(<{} bytes>)", self.0.len())
    }
}

/// Where PostgreSQL is. Its `Debug` hides the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// A `postgres://` connection string.
    pub url: String,
    /// Most pooled connections (`DB_POOL_SIZE`).
    pub pool_size: usize,
    /// `DB_STATEMENT_TIMEOUT` (5s): the time limit of every statement,
    /// pool checkout and store call; past it, 503 `store_unavailable`.
    pub statement_timeout: Duration,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// Where Redis is and how this instance takes part in the cluster
/// (`REDIS_*`). Its `Debug` hides the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[user:password@]host:port[/db]` (or
    /// `rediss://`).
    pub url: String,
    /// `REDIS_PREFIX` (`chat`): prefix of every key and of the events
    /// channel. Every instance of one deployment uses the same; deployments
    /// (or tests) sharing one Redis use different ones.
    pub prefix: String,
    /// `REDIS_PRESENCE_HEARTBEAT` (5s): how often this instance refreshes
    /// its registration and reaps dead instances.
    pub heartbeat: Duration,
    /// `REDIS_PRESENCE_TTL` (15s): how long a registration outlives its
    /// last refresh. A dead instance's users go offline everywhere within
    /// TTL + heartbeat (20 s by default).
    pub presence_ttl: Duration,
}

impl RedisConfig {
    /// The longest time after an instance dies before its users are
    /// announced offline on the others.
    pub fn offline_bound(&self) -> Duration {
        self.presence_ttl + self.heartbeat
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("heartbeat", &self.heartbeat)
            .field("presence_ttl", &self.presence_ttl)
            .finish()
    }
}

/// Everything the server is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PORT` (8080; 0 picks a free port).
    pub port: u16,
    /// Address to listen on: all interfaces (not read from the environment;
    /// tests use loopback).
    pub bind_address: IpAddr,
    /// HTTP worker threads; `None`: one per core (not read from the
    /// environment; tests use one).
    pub workers: Option<usize>,
    /// `ENVIRONMENT` (development).
    pub environment: Environment,
    /// `LOG_LEVEL` (info): a level or a tracing filter such as
    /// `info,chat_http=debug`.
    pub log_level: String,
    /// `LOG_FORMAT` (text).
    pub log_format: LogFormat,
    /// PostgreSQL when `DATABASE_URL` or any `DB_*` connection part is set;
    /// `None`: the in-memory store.
    pub database: Option<DatabaseConfig>,
    /// `JWT_SECRET`.
    pub jwt_secret: JwtSecret,
    /// Whether the secret was generated because none was configured
    /// (development only): tokens die with the process.
    pub jwt_secret_generated: bool,
    /// `JWT_EXPIRY_HOURS` (24).
    pub jwt_expiry_hours: u32,
    /// `WEBSOCKET_*`.
    pub ws: WsSettings,
    /// `CORS_ALLOWED_ORIGINS` (none).
    pub cors_allowed_origins: Vec<String>,
    /// `BCRYPT_COST` (12).
    pub bcrypt_cost: u32,
    /// Redis for fan-out and presence across instances, when `REDIS_URL`
    /// is set; `None`: the in-process hub (this instance only).
    pub redis: Option<RedisConfig>,
    /// `AUTH_RATE_LIMIT` (20 per minute per client address; 0 = off).
    pub auth_rate_limit: u32,
    /// `MESSAGE_RATE_LIMIT` (10 messages per second per user, bursts of
    /// twice that, over all of the user's connections and HTTP on this
    /// instance; 0 = off).
    pub message_rate_limit: u32,
    /// `TRUSTED_PROXIES` (none).
    pub trusted_proxies: Vec<IpAddr>,
    /// `HTTP_REQUEST_TIMEOUT` (10s): how long a request's body may take
    /// to arrive; past it, 408 `request_timeout` and the connection closes.
    pub http_request_timeout: Duration,
    /// `METRICS_ENABLED` (true): serve `GET /metrics` (Prometheus text)
    /// and record metrics; false: `/metrics` is a 404 and nothing is
    /// recorded.
    pub metrics_enabled: bool,
    /// Things that work but deserve a loud warning once logging is up.
    pub warnings: Vec<String>,
}

/// A variable with a value the server cannot use. The process exits with
/// code 2 and this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse or is out of range.
    #[error("{var}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What it was set to.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// The value (not repeated here: it is a secret) is refused.
    #[error("{var} refused: {reason}")]
    Refused {
        /// The variable.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// `.env` exists but cannot be read.
    #[error("cannot read .env: {0}")]
    DotEnv(String),
}

impl ConfigError {
    /// The variable at fault, if one.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { var, .. } | Self::Refused { var, .. } => Some(var),
            Self::DotEnv(_) => None,
        }
    }
}

/// JWT secrets published in documentation and example files (the old
/// service's README, this project's docs, examples and scripts): anyone can
/// sign tokens with them. Long ones pass the length rule, so only this list
/// stops them.
const KNOWN_DEFAULT_SECRETS: &[&str] = &[
    "your-secret-key-change-this-in-production",
    "your-very-strong-secret-key-here",
    "development-secret-key",
    "your-secret-key",
    "change-me",
    "changeme",
    "change-this",
    "secret",
    "jwt-secret",
    "a secret of at least thirty-two bytes!",
    "bench-secret-bench-secret-bench-secret-123",
    "bench-cluster-secret-0123456789abcdef-xyz",
    "bench-smoke-secret-0123456789abcdef0123",
];

/// The fewest distinct characters a production JWT secret may have: a
/// long run of few characters (`aaaa...`, `abab...`) is guessable however
/// long it is, while `openssl rand -hex 32` gives about 16.
pub const MIN_PRODUCTION_SECRET_DISTINCT_CHARS: usize = 10;

/// The shortest JWT secret production accepts, in bytes (HS256's key size).
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads `.env` (if present) and the process environment, the latter
    /// winning, then [`Config::from_vars`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Vars::new();
        match dotenvy::dotenv_iter() {
            Ok(lines) => {
                for line in lines {
                    let (key, value) = line.map_err(|e| ConfigError::DotEnv(e.to_string()))?;
                    vars.insert(key, value);
                }
            }
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::DotEnv(e.to_string())),
        }
        for (key, value) in std::env::vars_os() {
            if let (Ok(key), Ok(value)) = (key.into_string(), value.into_string()) {
                vars.insert(key, value);
            }
        }
        Self::from_vars(&vars)
    }

    /// The configuration these variables describe. Empty values count as
    /// unset.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let env = Env::read(vars)?;
        let mut warnings = Vec::new();
        let environment = env.environment.unwrap_or(Environment::Development);
        let (jwt_secret, jwt_secret_generated) = jwt_secret(&env, environment, &mut warnings)?;
        Ok(Self {
            port: env.port.unwrap_or(8080),
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            workers: None,
            environment,
            log_level: log_level(&env, vars)?,
            log_format: env.log_format.unwrap_or(LogFormat::Text),
            database: database(&env, vars)?,
            jwt_secret,
            jwt_secret_generated,
            jwt_expiry_hours: within(vars, "JWT_EXPIRY_HOURS", env.jwt_expiry_hours, 24, 1..=8760)?,
            ws: ws_settings(&env, vars)?,
            cors_allowed_origins: cors_origins(&env, vars)?,
            bcrypt_cost: within(vars, "BCRYPT_COST", env.bcrypt_cost, 12, 4..=31)?,
            redis: redis(&env, vars)?,
            auth_rate_limit: env.auth_rate_limit.unwrap_or(20),
            message_rate_limit: within(
                vars,
                "MESSAGE_RATE_LIMIT",
                env.message_rate_limit,
                10,
                0..=1_000_000,
            )?,
            trusted_proxies: env.trusted_proxies.map(|list| list.0).unwrap_or_default(),
            http_request_timeout: positive(
                vars,
                "HTTP_REQUEST_TIMEOUT",
                env.http_request_timeout,
                chat_http::body_deadline::DEFAULT_REQUEST_TIMEOUT,
            )?,
            metrics_enabled: env.metrics_enabled.is_none_or(|flag| flag.0),
            warnings,
        })
    }

    /// The settings the HTTP adapter needs.
    pub fn http_settings(&self) -> chat_http::HttpSettings {
        chat_http::HttpSettings {
            production: self.environment == Environment::Production,
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            auth_rate_limit: self.auth_rate_limit,
            trusted_proxies: self.trusted_proxies.clone(),
            ws: self.ws.clone(),
            body_limit: chat_http::DEFAULT_BODY_LIMIT,
            request_timeout: self.http_request_timeout,
        }
    }
}

fn log_level(env: &Env, vars: &Vars) -> Result<String, ConfigError> {
    let level = env.log_level.clone().unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::EnvFilter::try_new(&level).map_err(|_| {
        invalid(
            vars,
            "LOG_LEVEL",
            "error, warn, info, debug, trace or a tracing filter such as info,chat_http=debug",
        )
    })?;
    Ok(level)
}

fn jwt_secret(
    env: &Env,
    environment: Environment,
    warnings: &mut Vec<String>,
) -> Result<(JwtSecret, bool), ConfigError> {
    let refused = |reason: String| ConfigError::Refused {
        var: "JWT_SECRET",
        reason,
    };
    let Some(secret) = env.jwt_secret.as_deref() else {
        if environment == Environment::Production {
            return Err(refused(format!(
                "it is missing; ENVIRONMENT=production needs a random secret of at least \
                 {MIN_PRODUCTION_SECRET_BYTES} bytes (generate one with `openssl rand -hex 32`)"
            )));
        }
        warnings.push(
            "JWT_SECRET is not set: using a random secret for this process only. Every token \
             dies when the server restarts, and several instances will not accept each other's \
             tokens. Set JWT_SECRET (`openssl rand -hex 32`)."
                .to_owned(),
        );
        return Ok((JwtSecret::generate(), true));
    };
    let weakness = secret_weakness(secret);
    match (environment, weakness) {
        (Environment::Production, Some(why)) => Err(refused(format!(
            "{why}; ENVIRONMENT=production needs a random secret of at least \
             {MIN_PRODUCTION_SECRET_BYTES} bytes (generate one with `openssl rand -hex 32`)"
        ))),
        (Environment::Development, Some(why)) => {
            warnings.push(format!(
                "JWT_SECRET {why}: acceptable for development only; production refuses it"
            ));
            Ok((JwtSecret(secret.as_bytes().to_vec()), false))
        }
        (_, None) => Ok((JwtSecret(secret.as_bytes().to_vec()), false)),
    }
}

/// Why a secret must not be used in production, if it must not.
fn secret_weakness(secret: &str) -> Option<String> {
    if KNOWN_DEFAULT_SECRETS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(secret))
    {
        return Some("is a published default value".to_owned());
    }
    if secret.len() < MIN_PRODUCTION_SECRET_BYTES {
        return Some(format!("is only {} bytes long", secret.len()));
    }
    let distinct = secret
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if distinct < MIN_PRODUCTION_SECRET_DISTINCT_CHARS {
        return Some(format!(
            "has only {distinct} distinct characters (low entropy; at least \
             {MIN_PRODUCTION_SECRET_DISTINCT_CHARS} are needed)"
        ));
    }
    None
}

fn redis(env: &Env, vars: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
    let prefix = env
        .redis_prefix
        .clone()
        .unwrap_or_else(|| "chat".to_owned());
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            vars,
            "REDIS_PREFIX",
            "a key prefix without spaces, such as chat",
        ));
    }
    let heartbeat = positive(
        vars,
        "REDIS_PRESENCE_HEARTBEAT",
        env.redis_presence_heartbeat,
        Duration::from_secs(5),
    )?;
    if heartbeat < Duration::from_millis(10) {
        return Err(invalid(vars, "REDIS_PRESENCE_HEARTBEAT", "at least 10ms"));
    }
    let presence_ttl = positive(
        vars,
        "REDIS_PRESENCE_TTL",
        env.redis_presence_ttl,
        Duration::from_secs(15),
    )?;
    if presence_ttl <= heartbeat {
        return Err(invalid(
            vars,
            "REDIS_PRESENCE_TTL",
            "a lifetime longer than REDIS_PRESENCE_HEARTBEAT (three heartbeats are advised)",
        ));
    }
    let Some(url) = env.redis_url.as_deref() else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::Invalid {
            var: "REDIS_URL",
            // Not echoed: it may hold a password.
            value: "<redacted>".to_owned(),
            expected: "a redis:// or rediss:// URL".to_owned(),
        });
    }
    Ok(Some(RedisConfig {
        url: url.to_owned(),
        prefix,
        heartbeat,
        presence_ttl,
    }))
}

fn database(env: &Env, vars: &Vars) -> Result<Option<DatabaseConfig>, ConfigError> {
    let pool_size = within(vars, "DB_POOL_SIZE", env.db_pool_size, 16, 1..=10_000)?;
    let statement_timeout = positive(
        vars,
        "DB_STATEMENT_TIMEOUT",
        env.db_statement_timeout,
        chat_store_postgres::DEFAULT_STATEMENT_TIMEOUT,
    )?;
    let url = if let Some(url) = env.database_url.as_deref() {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                // Not echoed: it may hold a password.
                value: "<redacted>".to_owned(),
                expected: "a postgres:// or postgresql:// connection URL".to_owned(),
            });
        }
        url.to_owned()
    } else if env.selects_postgres() {
        database_url_from_parts(env, vars)?
    } else {
        return Ok(None);
    };
    Ok(Some(DatabaseConfig {
        url,
        pool_size,
        statement_timeout,
    }))
}

/// `postgres://user:password@host:port/name?sslmode=...&sslrootcert=...`
/// from `DB_*`, with the old service's defaults for the parts not given.
fn database_url_from_parts(env: &Env, vars: &Vars) -> Result<String, ConfigError> {
    let host = env.db_host.as_deref().unwrap_or("localhost");
    let port = within(vars, "DB_PORT", env.db_port, 5432, 1..=u16::MAX)?;
    let name = env.db_name.as_deref().unwrap_or("chatapi");
    let user = env.db_user.as_deref().unwrap_or("postgres");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let auth = match env.db_password.as_deref() {
        Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
        None => percent_encode(user),
    };
    let mut url = format!("postgres://{auth}@{host}:{port}/{}", percent_encode(name));
    if let Some(mode) = env.db_sslmode {
        url.push_str("?sslmode=");
        url.push_str(mode.as_str());
    }
    // The CA that signed the database's certificate (libpq's sslrootcert);
    // without it the `verify-*` modes trust the system's roots.
    if let Some(root) = env.db_sslrootcert.as_deref() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("sslrootcert=");
        url.push_str(&percent_encode(root));
    }
    Ok(url)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn ws_settings(env: &Env, vars: &Vars) -> Result<WsSettings, ConfigError> {
    let defaults = WsSettings::default();
    // The old service's buffer sizes: checked, so a bad value still fails
    // the start as it did there, but nothing reads them (actix-ws sizes
    // its buffers itself).
    within(
        vars,
        "WEBSOCKET_READ_BUFFER_SIZE",
        env.websocket_read_buffer_size,
        1024,
        1..=1 << 24,
    )?;
    within(
        vars,
        "WEBSOCKET_WRITE_BUFFER_SIZE",
        env.websocket_write_buffer_size,
        1024,
        1..=1 << 24,
    )?;
    let settings = WsSettings {
        max_message_size: within(
            vars,
            "WEBSOCKET_MAX_MESSAGE_SIZE",
            env.websocket_max_message_size,
            defaults.max_message_size,
            1..=1 << 24,
        )?,
        ping_period: positive(
            vars,
            "WEBSOCKET_PING_PERIOD",
            env.websocket_ping_period,
            defaults.ping_period,
        )?,
        pong_wait: positive(
            vars,
            "WEBSOCKET_PONG_WAIT",
            env.websocket_pong_wait,
            defaults.pong_wait,
        )?,
        write_wait: positive(
            vars,
            "WEBSOCKET_WRITE_WAIT",
            env.websocket_write_wait,
            defaults.write_wait,
        )?,
        rate_limit: within(
            vars,
            "WEBSOCKET_RATE_LIMIT",
            env.websocket_rate_limit,
            defaults.rate_limit,
            0..=1_000_000,
        )?,
        replay_limit: within(
            vars,
            "WEBSOCKET_REPLAY_LIMIT",
            env.websocket_replay_limit,
            defaults.replay_limit,
            1..=1_000_000,
        )?,
        presence_max_subscriptions: within(
            vars,
            "PRESENCE_MAX_SUBSCRIPTIONS",
            env.presence_max_subscriptions,
            defaults.presence_max_subscriptions,
            1..=1_000_000,
        )?,
        max_connections_per_user: within(
            vars,
            "WEBSOCKET_MAX_CONNECTIONS_PER_USER",
            env.websocket_max_connections_per_user,
            defaults.max_connections_per_user,
            0..=1_000_000,
        )?,
    };
    if settings.ping_period >= settings.pong_wait {
        return Err(invalid(
            vars,
            "WEBSOCKET_PING_PERIOD",
            "a period shorter than WEBSOCKET_PONG_WAIT (else every connection times out)",
        ));
    }
    Ok(settings)
}

fn cors_origins(env: &Env, vars: &Vars) -> Result<Vec<String>, ConfigError> {
    let listed = env.cors_allowed_origins.clone().map(|l| l.0);
    listed
        .unwrap_or_default()
        .iter()
        .map(|origin| {
            valid_origin(origin).ok_or_else(|| {
                invalid(
                    vars,
                    "CORS_ALLOWED_ORIGINS",
                    expected("CORS_ALLOWED_ORIGINS"),
                )
            })
        })
        .collect()
}

/// An origin as browsers send it (`scheme://host[:port]`), or `*`.
fn valid_origin(origin: &str) -> Option<String> {
    if origin == "*" {
        return Some(origin.to_owned());
    }
    let origin = origin.strip_suffix('/').unwrap_or(origin);
    let (scheme, authority) = origin.split_once("://")?;
    let scheme_ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let authority_ok = !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' ', ','])
        && authority.is_ascii();
    (scheme_ok && authority_ok).then(|| origin.to_owned())
}

#[cfg(test)]
mod tests;
