//! The configuration, read once at start from the environment (and `.env`
//! if present; the real environment wins). Every rule is a pure function of
//! a map of variables, so it is tested without touching the process
//! environment.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use chat_http::WsSettings;

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

/// The parts that select PostgreSQL when any is set (`DB_POOL_SIZE` alone
/// does not).
const DB_PARTS: &[&str] = &[
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSLMODE",
];

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
        let r = Reader(vars);
        let mut warnings = Vec::new();
        let environment = environment(&r)?;
        let (jwt_secret, jwt_secret_generated) = jwt_secret(&r, environment, &mut warnings)?;
        Ok(Self {
            port: r.number("PORT", 8080, 0..=u16::MAX, "a port number 0-65535")?,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            workers: None,
            environment,
            log_level: log_level(&r)?,
            log_format: log_format(&r)?,
            database: database(&r)?,
            jwt_secret,
            jwt_secret_generated,
            jwt_expiry_hours: r.number("JWT_EXPIRY_HOURS", 24, 1..=8760, "hours, 1-8760")?,
            ws: ws_settings(&r)?,
            cors_allowed_origins: cors_origins(&r)?,
            bcrypt_cost: r.number("BCRYPT_COST", 12, 4..=31, "a bcrypt cost, 4-31")?,
            redis: redis(&r)?,
            auth_rate_limit: r.number(
                "AUTH_RATE_LIMIT",
                20,
                0..=u32::MAX,
                "attempts per minute (0 turns the limit off)",
            )?,
            message_rate_limit: r.number(
                "MESSAGE_RATE_LIMIT",
                10,
                0..=1_000_000,
                "messages per second per user, 0-1000000 (0 turns the limit off)",
            )?,
            trusted_proxies: trusted_proxies(&r)?,
            http_request_timeout: r.duration(
                "HTTP_REQUEST_TIMEOUT",
                chat_http::body_deadline::DEFAULT_REQUEST_TIMEOUT,
            )?,
            metrics_enabled: r.flag("METRICS_ENABLED", true)?,
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

/// Reads variables; empty or blank values count as unset.
struct Reader<'a>(&'a Vars);

impl Reader<'_> {
    fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn invalid(&self, var: &'static str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            var,
            value: self.get(var).unwrap_or_default().to_owned(),
            expected: expected.to_owned(),
        }
    }

    fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd,
    {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.invalid(var, expected)),
        }
    }

    fn duration(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        parse_duration(raw).filter(|d| !d.is_zero()).ok_or_else(|| {
            self.invalid(
                var,
                "a positive duration such as 54s, 1m, 500ms, 1m30s or plain seconds (54)",
            )
        })
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.invalid(var, "true or false")),
        }
    }

    fn list(&self, var: &str) -> Vec<&str> {
        self.get(var)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn environment(r: &Reader<'_>) -> Result<Environment, ConfigError> {
    match r.get("ENVIRONMENT").map(str::to_ascii_lowercase).as_deref() {
        None | Some("development") => Ok(Environment::Development),
        Some("production") => Ok(Environment::Production),
        Some(_) => Err(r.invalid("ENVIRONMENT", "development or production")),
    }
}

fn log_level(r: &Reader<'_>) -> Result<String, ConfigError> {
    let level = r.get("LOG_LEVEL").unwrap_or("info").to_owned();
    tracing_subscriber::EnvFilter::try_new(&level).map_err(|_| {
        r.invalid(
            "LOG_LEVEL",
            "error, warn, info, debug, trace or a tracing filter such as info,chat_http=debug",
        )
    })?;
    Ok(level)
}

fn log_format(r: &Reader<'_>) -> Result<LogFormat, ConfigError> {
    match r.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(r.invalid("LOG_FORMAT", "text or json")),
    }
}

fn jwt_secret(
    r: &Reader<'_>,
    environment: Environment,
    warnings: &mut Vec<String>,
) -> Result<(JwtSecret, bool), ConfigError> {
    let refused = |reason: String| ConfigError::Refused {
        var: "JWT_SECRET",
        reason,
    };
    let Some(secret) = r.get("JWT_SECRET") else {
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

fn redis(r: &Reader<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    let prefix = r.get("REDIS_PREFIX").unwrap_or("chat").to_owned();
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(r.invalid("REDIS_PREFIX", "a key prefix without spaces, such as chat"));
    }
    let heartbeat = r.duration("REDIS_PRESENCE_HEARTBEAT", Duration::from_secs(5))?;
    if heartbeat < Duration::from_millis(10) {
        return Err(r.invalid("REDIS_PRESENCE_HEARTBEAT", "at least 10ms"));
    }
    let presence_ttl = r.duration("REDIS_PRESENCE_TTL", Duration::from_secs(15))?;
    if presence_ttl <= heartbeat {
        return Err(r.invalid(
            "REDIS_PRESENCE_TTL",
            "a lifetime longer than REDIS_PRESENCE_HEARTBEAT (three heartbeats are advised)",
        ));
    }
    let Some(url) = r.get("REDIS_URL") else {
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

fn database(r: &Reader<'_>) -> Result<Option<DatabaseConfig>, ConfigError> {
    let pool_size = r.number(
        "DB_POOL_SIZE",
        16,
        1..=10_000,
        "a connection count, 1-10000",
    )?;
    let statement_timeout = r.duration(
        "DB_STATEMENT_TIMEOUT",
        chat_store_postgres::DEFAULT_STATEMENT_TIMEOUT,
    )?;
    if let Some(url) = r.get("DATABASE_URL") {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                // Not echoed: it may hold a password.
                value: "<redacted>".to_owned(),
                expected: "a postgres:// or postgresql:// connection URL".to_owned(),
            });
        }
        return Ok(Some(DatabaseConfig {
            url: url.to_owned(),
            pool_size,
            statement_timeout,
        }));
    }
    if !DB_PARTS.iter().any(|part| r.get(part).is_some()) {
        return Ok(None);
    }
    Ok(Some(DatabaseConfig {
        url: database_url_from_parts(r)?,
        pool_size,
        statement_timeout,
    }))
}

/// `postgres://user:password@host:port/name?sslmode=...&sslrootcert=...`
/// from `DB_*`, with
/// the old service's defaults for the parts not given.
fn database_url_from_parts(r: &Reader<'_>) -> Result<String, ConfigError> {
    let host = r.get("DB_HOST").unwrap_or("localhost");
    let port: u16 = r.number("DB_PORT", 5432, 1..=u16::MAX, "a port number 1-65535")?;
    let name = r.get("DB_NAME").unwrap_or("chatapi");
    let user = r.get("DB_USER").unwrap_or("postgres");
    let password = r.get("DB_PASSWORD");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let auth = match password {
        Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
        None => percent_encode(user),
    };
    let mut url = format!("postgres://{auth}@{host}:{port}/{}", percent_encode(name));
    if let Some(mode) = r.get("DB_SSLMODE") {
        let modes = ["disable", "prefer", "require", "verify-ca", "verify-full"];
        if !modes.contains(&mode) {
            return Err(r.invalid(
                "DB_SSLMODE",
                "disable, prefer, require, verify-ca or verify-full",
            ));
        }
        url.push_str("?sslmode=");
        url.push_str(mode);
    }
    // The CA that signed the database's certificate (libpq's sslrootcert);
    // without it the `verify-*` modes trust the system's roots.
    if let Some(root) = r.get("DB_SSLROOTCERT") {
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

fn ws_settings(r: &Reader<'_>) -> Result<WsSettings, ConfigError> {
    let defaults = WsSettings::default();
    let size = "a size in bytes, 1-16777216";
    // The old service's buffer sizes: checked, so a bad value still fails
    // the start as it did there, but nothing reads them (actix-ws sizes
    // its buffers itself).
    for var in ["WEBSOCKET_READ_BUFFER_SIZE", "WEBSOCKET_WRITE_BUFFER_SIZE"] {
        r.number(var, 1024, 1..=1 << 24, size)?;
    }
    let settings = WsSettings {
        max_message_size: r.number(
            "WEBSOCKET_MAX_MESSAGE_SIZE",
            defaults.max_message_size,
            1..=1 << 24,
            size,
        )?,
        ping_period: r.duration("WEBSOCKET_PING_PERIOD", defaults.ping_period)?,
        pong_wait: r.duration("WEBSOCKET_PONG_WAIT", defaults.pong_wait)?,
        write_wait: r.duration("WEBSOCKET_WRITE_WAIT", defaults.write_wait)?,
        rate_limit: r.number(
            "WEBSOCKET_RATE_LIMIT",
            defaults.rate_limit,
            0..=1_000_000,
            "frames per second per connection, 0-1000000 (0 turns the limit off)",
        )?,
        replay_limit: r.number(
            "WEBSOCKET_REPLAY_LIMIT",
            defaults.replay_limit,
            1..=1_000_000,
            "messages replayed for ?since= before replay_truncated, 1-1000000",
        )?,
        presence_max_subscriptions: r.number(
            "PRESENCE_MAX_SUBSCRIPTIONS",
            defaults.presence_max_subscriptions,
            1..=1_000_000,
            "users one connection may follow the presence of, 1-1000000",
        )?,
        max_connections_per_user: r.number(
            "WEBSOCKET_MAX_CONNECTIONS_PER_USER",
            defaults.max_connections_per_user,
            0..=1_000_000,
            "WebSockets per user on one instance, 0-1000000 (0 turns the cap off)",
        )?,
    };
    if settings.ping_period >= settings.pong_wait {
        return Err(r.invalid(
            "WEBSOCKET_PING_PERIOD",
            "a period shorter than WEBSOCKET_PONG_WAIT (else every connection times out)",
        ));
    }
    Ok(settings)
}

fn cors_origins(r: &Reader<'_>) -> Result<Vec<String>, ConfigError> {
    r.list("CORS_ALLOWED_ORIGINS")
        .into_iter()
        .map(|origin| {
            valid_origin(origin).ok_or_else(|| {
                r.invalid(
                    "CORS_ALLOWED_ORIGINS",
                    "a comma list of origins such as https://chat.example.com \
                     (scheme://host[:port], no path), or *",
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

fn trusted_proxies(r: &Reader<'_>) -> Result<Vec<IpAddr>, ConfigError> {
    r.list("TRUSTED_PROXIES")
        .into_iter()
        .map(|addr| {
            addr.parse::<IpAddr>().map_err(|_| {
                r.invalid(
                    "TRUSTED_PROXIES",
                    "a comma list of IP addresses such as 127.0.0.1,10.0.0.2",
                )
            })
        })
        .collect()
}

/// Parses `54s`, `1m`, `500ms`, `2h`, `1m30s`, `1.5s` or plain seconds
/// (`54`).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut rest = raw;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        let value: f64 = number.parse().ok()?;
        total = total.checked_add(Duration::try_from_secs_f64(value * seconds_per_unit).ok()?)?;
        rest = tail;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
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
}
