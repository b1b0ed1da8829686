//! The environment as serde reads it: every variable the server knows,
//! typed, with what each must be when it is refused.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use chat_store_postgres::SslMode;
use serde::de::value::MapDeserializer;
use serde::Deserialize;
use serde_with::{serde_as, NoneAsEmptyString};

use super::{ConfigError, Environment, LogFormat, Vars};

/// Every variable the server reads, typed: what serde makes of the
/// environment. A variable that is set (not blank) and does not parse as
/// its type is refused by name; ranges and rules that tie variables
/// together are checked afterwards, by the functions that build `Config`.
#[serde_as]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", default)]
pub(super) struct Env {
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) port: Option<u16>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) environment: Option<Environment>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) log_level: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) log_format: Option<LogFormat>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) database_url: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_host: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_port: Option<u16>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_name: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_user: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_password: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_sslmode: Option<SslMode>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_sslrootcert: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_pool_size: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) db_statement_timeout: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) jwt_secret: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) jwt_expiry_hours: Option<u32>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_read_buffer_size: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_write_buffer_size: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_max_message_size: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_ping_period: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_pong_wait: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_write_wait: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_rate_limit: Option<u32>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_replay_limit: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) websocket_max_connections_per_user: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) presence_max_subscriptions: Option<usize>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) cors_allowed_origins: Option<CommaList<String>>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) bcrypt_cost: Option<u32>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) redis_url: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) redis_prefix: Option<String>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) redis_presence_heartbeat: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) redis_presence_ttl: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) auth_rate_limit: Option<u32>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) message_rate_limit: Option<u32>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) trusted_proxies: Option<CommaList<IpAddr>>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) http_request_timeout: Option<GoDuration>,
    #[serde_as(as = "NoneAsEmptyString")]
    pub(super) metrics_enabled: Option<Flag>,
}

impl Env {
    /// The variables that are set, trimmed, typed.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let set = vars.iter().filter_map(|(key, value)| {
            let value = value.trim();
            (!value.is_empty()).then_some((key.as_str(), value))
        });
        let map = MapDeserializer::<_, serde::de::value::Error>::new(set);
        serde_path_to_error::deserialize(map).map_err(|err| {
            let var = err.path().to_string();
            match known_var(&var) {
                Some((var, expected)) => invalid(vars, var, expected),
                None => ConfigError::Invalid {
                    var: "?",
                    value: String::new(),
                    expected: err.inner().to_string(),
                },
            }
        })
    }
}

/// What each variable must be, as a refusal says it.
const EXPECTED: &[(&str, &str)] = &[
    ("PORT", "a port number 0-65535"),
    ("ENVIRONMENT", "development or production"),
    ("LOG_FORMAT", "text or json"),
    ("DB_PORT", "a port number 1-65535"),
    ("DB_SSLMODE", chat_store_postgres::SSL_MODES),
    ("DB_POOL_SIZE", "a connection count, 1-10000"),
    ("DB_STATEMENT_TIMEOUT", DURATION),
    ("JWT_EXPIRY_HOURS", "hours, 1-8760"),
    ("WEBSOCKET_READ_BUFFER_SIZE", SIZE),
    ("WEBSOCKET_WRITE_BUFFER_SIZE", SIZE),
    ("WEBSOCKET_MAX_MESSAGE_SIZE", SIZE),
    ("WEBSOCKET_PING_PERIOD", DURATION),
    ("WEBSOCKET_PONG_WAIT", DURATION),
    ("WEBSOCKET_WRITE_WAIT", DURATION),
    (
        "WEBSOCKET_RATE_LIMIT",
        "frames per second per connection, 0-1000000 (0 turns the limit off)",
    ),
    (
        "WEBSOCKET_REPLAY_LIMIT",
        "messages replayed for ?since= before replay_truncated, 1-1000000",
    ),
    (
        "WEBSOCKET_MAX_CONNECTIONS_PER_USER",
        "WebSockets per user on one instance, 0-1000000 (0 turns the cap off)",
    ),
    (
        "PRESENCE_MAX_SUBSCRIPTIONS",
        "users one connection may follow the presence of, 1-1000000",
    ),
    (
        "CORS_ALLOWED_ORIGINS",
        "a comma list of origins such as https://chat.example.com \
         (scheme://host[:port], no path), or *",
    ),
    ("BCRYPT_COST", "a bcrypt cost, 4-31"),
    ("REDIS_PRESENCE_HEARTBEAT", DURATION),
    ("REDIS_PRESENCE_TTL", DURATION),
    (
        "AUTH_RATE_LIMIT",
        "attempts per minute (0 turns the limit off)",
    ),
    (
        "MESSAGE_RATE_LIMIT",
        "messages per second per user, 0-1000000 (0 turns the limit off)",
    ),
    (
        "TRUSTED_PROXIES",
        "a comma list of IP addresses such as 127.0.0.1,10.0.0.2",
    ),
    ("HTTP_REQUEST_TIMEOUT", DURATION),
    ("METRICS_ENABLED", "true or false"),
];

const SIZE: &str = "a size in bytes, 1-16777216";
const DURATION: &str = "a positive duration such as 54s, 1m, 500ms, 1m30s or plain seconds (54)";

/// A variable's name as a `'static` string, and what it must be.
fn known_var(var: &str) -> Option<(&'static str, &'static str)> {
    EXPECTED.iter().copied().find(|(name, _)| *name == var)
}

/// What a variable's name says it must be.
pub(super) fn expected(var: &'static str) -> &'static str {
    known_var(var).map_or("a valid value", |(_, expected)| expected)
}

/// The refusal of `var`'s value.
pub(super) fn invalid(vars: &Vars, var: &'static str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: vars
            .get(var)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default(),
        expected: expected.to_owned(),
    }
}

/// `value` if in `range`, `default` if unset.
pub(super) fn within<T: PartialOrd>(
    vars: &Vars,
    var: &'static str,
    value: Option<T>,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(value) if range.contains(&value) => Ok(value),
        Some(_) => Err(invalid(vars, var, expected(var))),
    }
}

/// `value` if above zero, `default` if unset.
pub(super) fn positive(
    vars: &Vars,
    var: &'static str,
    value: Option<GoDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(GoDuration(value)) if !value.is_zero() => Ok(value),
        Some(_) => Err(invalid(vars, var, DURATION)),
    }
}

impl FromStr for Environment {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(format!("{other:?}")),
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?}")),
        }
    }
}

/// A duration as the old service (Go) wrote them: see [`parse_duration`].
#[derive(Clone, Copy, Debug)]
pub(super) struct GoDuration(pub(super) Duration);

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
            .map(Self)
            .ok_or_else(|| format!("{raw:?} is not a duration"))
    }
}

/// `true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flag(pub(super) bool);

impl FromStr for Flag {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Self(true)),
            "false" | "0" | "no" | "off" => Ok(Self(false)),
            other => Err(format!("{other:?}")),
        }
    }
}

/// A comma list, blanks around and between items ignored.
#[derive(Clone, Debug)]
pub(super) struct CommaList<T>(pub(super) Vec<T>);

impl<T: FromStr> FromStr for CommaList<T> {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| item.parse().map_err(|_| format!("{item:?}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl Env {
    /// Whether any `DB_*` connection part is set (`DB_POOL_SIZE` alone
    /// does not select PostgreSQL).
    pub(super) fn selects_postgres(&self) -> bool {
        self.db_host.is_some()
            || self.db_port.is_some()
            || self.db_name.is_some()
            || self.db_user.is_some()
            || self.db_password.is_some()
            || self.db_sslmode.is_some()
    }
}

/// Parses `54s`, `1m`, `500ms`, `2h`, `1m30s`, `1.5s` or plain seconds
/// (`54`): Go's duration syntax, which the old service's variables use
/// (and which humantime does not read: it has no fractions).
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
