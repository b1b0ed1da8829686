//! What every handler shares: the service, the HTTP settings, the
//! login/register rate limiter and, if the app serves them, its metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use chat_domain::rate_limit::RateLimit;
use chat_domain::{ChatService, DomainResult, UserId};

use crate::client_addr::client_addr;
use crate::metrics::RenderMetrics;
use crate::ws::connections::{ConnectionSlot, UserConnections};

/// Request bodies up to this size are read (64 KiB: a message of 4000
/// characters fits even with every character escaped).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// WebSocket settings (SPEC's `WEBSOCKET_*` variables), kept here for the
/// WebSocket handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsSettings {
    /// Largest frame accepted, in bytes; bigger ones close with 1009.
    pub max_message_size: usize,
    /// How often the server pings each connection.
    pub ping_period: Duration,
    /// How long without a pong before the server closes the connection.
    pub pong_wait: Duration,
    /// How long one write to a client may wait for room before the
    /// connection is closed as too slow (1013).
    pub write_wait: Duration,
    /// `message` and `typing` frames each connection may send per second,
    /// in bursts of up to twice that; over it a frame is answered with an
    /// `error` (`rate_limited`) and ignored. 0 turns the limit off.
    pub rate_limit: u32,
    /// Most messages one connection replays for `?since=` before it says
    /// `replay_truncated` (an `error` frame) and goes live; the rest is
    /// read over HTTP (`GET /api/messages?after=<last replayed id>`).
    /// At least 1.
    pub replay_limit: usize,
    /// Most users one connection may follow the presence of; over it a
    /// `presence_subscribe` is answered with `too_many_subscriptions`.
    pub presence_max_subscriptions: usize,
    /// Most WebSockets one user may hold open on this instance; the next
    /// upgrade is 429 `too_many_connections`. 0 turns the cap off.
    pub max_connections_per_user: usize,
}

impl WsSettings {
    /// The default [`WsSettings::replay_limit`], in messages.
    pub const DEFAULT_REPLAY_LIMIT: usize = 1000;
    /// The default [`WsSettings::presence_max_subscriptions`], in users.
    pub const DEFAULT_PRESENCE_MAX_SUBSCRIPTIONS: usize = 1000;
    /// The default [`WsSettings::max_connections_per_user`].
    pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 16;
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            max_message_size: 4096,
            ping_period: Duration::from_secs(54),
            pong_wait: Duration::from_secs(60),
            write_wait: Duration::from_secs(10),
            rate_limit: 10,
            replay_limit: Self::DEFAULT_REPLAY_LIMIT,
            presence_max_subscriptions: Self::DEFAULT_PRESENCE_MAX_SUBSCRIPTIONS,
            max_connections_per_user: Self::DEFAULT_MAX_CONNECTIONS_PER_USER,
        }
    }
}

/// How the HTTP adapter behaves; the binary fills it from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// `ENVIRONMENT=production`: the token cookie is marked `Secure`.
    pub production: bool,
    /// Origins allowed to call the API from a browser (exact matches, such
    /// as `https://chat.example.com`); `*` allows any origin, without
    /// credentials. Empty: same-origin only.
    pub cors_allowed_origins: Vec<String>,
    /// Login and register attempts per minute per client address; 0 turns
    /// the limit off.
    pub auth_rate_limit: u32,
    /// Proxies (such as nginx) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// WebSocket settings.
    pub ws: WsSettings,
    /// Largest request body read, in bytes.
    pub body_limit: usize,
    /// How long a request's body may take to arrive, from its head
    /// (`HTTP_REQUEST_TIMEOUT`); past it: 408 `request_timeout` and the
    /// connection is closed.
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            production: false,
            cors_allowed_origins: Vec::new(),
            auth_rate_limit: 20,
            trusted_proxies: Vec::new(),
            ws: WsSettings::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: crate::body_deadline::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The state every route shares. Cheap to clone: all parts are shared.
#[derive(Clone)]
pub struct ApiState {
    service: Arc<ChatService>,
    settings: Arc<HttpSettings>,
    /// Login and register attempts per client address.
    auth_limiter: Arc<RateLimit<IpAddr>>,
    connections: Arc<UserConnections>,
    metrics: Option<RenderMetrics>,
    /// Permits to fill a hole of the live stream from the store (see
    /// [`crate::ws::FILL_CONCURRENCY`]).
    fills: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// State for a service and its HTTP settings.
    pub fn new(service: Arc<ChatService>, settings: HttpSettings) -> Self {
        let auth_limiter = Arc::new(RateLimit::per_minute(settings.auth_rate_limit));
        let connections = UserConnections::new(settings.ws.max_connections_per_user);
        Self {
            service,
            settings: Arc::new(settings),
            auth_limiter,
            connections,
            metrics: None,
            fills: Arc::new(tokio::sync::Semaphore::new(crate::ws::FILL_CONCURRENCY)),
        }
    }

    /// Serves `GET /metrics` with what `render` returns (the Prometheus
    /// text format). Without it, `/metrics` is a 404 like any unknown path.
    /// The app decides how the text is made: this crate only records into
    /// the `metrics` facade (see [`crate::metrics`]).
    pub fn with_metrics(mut self, render: RenderMetrics) -> Self {
        self.metrics = Some(render);
        self
    }

    /// What renders `/metrics`, if the app serves it.
    pub fn metrics(&self) -> Option<&RenderMetrics> {
        self.metrics.as_ref()
    }

    /// The use cases.
    pub fn service(&self) -> &Arc<ChatService> {
        &self.service
    }

    /// The permits under which WebSocket sessions fill holes.
    pub(crate) fn fills(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.fills)
    }

    /// The HTTP settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The client's address: the peer, or what a trusted proxy says in
    /// `X-Forwarded-For`.
    pub fn client_addr(&self, req: &HttpRequest) -> IpAddr {
        client_addr(req, &self.settings.trusted_proxies)
    }

    /// Counts a new WebSocket of `user` until the slot is dropped;
    /// `TooManyConnections` when they hold `max_connections_per_user`.
    pub(crate) fn open_connection_slot(
        &self,
        user: UserId,
    ) -> DomainResult<Option<ConnectionSlot>> {
        self.connections.open(user)
    }

    /// Counts a login or register attempt from this request's client;
    /// `RateLimited` when over `auth_rate_limit` per minute.
    pub fn check_auth_attempt(&self, req: &HttpRequest) -> DomainResult<()> {
        let checked = self.auth_limiter.check(&self.client_addr(req));
        if checked.is_err() {
            crate::metrics::auth_rate_limited();
        }
        checked
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("settings", &self.settings)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}
