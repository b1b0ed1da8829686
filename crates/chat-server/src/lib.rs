//! # chat-server
//!
//! The composition root of the chat service: reads the [`Config`], picks
//! the adapters (PostgreSQL or in-memory store; Redis fan-out across
//! instances or the in-process realtime hub; bcrypt, HS256 JWTs), and
//! serves the HTTP API of `chat-http`.
//!
//! The `chat-server` binary is [`Config::from_env`] then [`run`]. Tests and
//! other embedders start the real app on a port of their choice:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use chat_server::{build, Config};
//!
//! let mut vars = chat_server::config::Vars::new();
//! vars.insert("PORT".into(), "0".into());
//! vars.insert("BCRYPT_COST".into(), "4".into());
//! let mut config = Config::from_vars(&vars).expect("valid configuration");
//! config.bind_address = [127, 0, 0, 1].into();
//!
//! let app = build(config).await?;
//! println!("listening on {}", app.local_addr());
//! let stop = app.shutdown_handle();
//! tokio::spawn(app.run_until_stopped());
//! // ... talk to it over HTTP ...
//! stop.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod metrics;
pub mod telemetry;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use chat_auth::{BcryptHasher, JwtCodec};
use chat_domain::{AuthPolicy, ChatService, Notifier, Stores};
use chat_http::server::ServerOptions;
use chat_http::ApiState;
use chat_realtime::{Hub, HubConfig};
use chat_realtime_redis::{RedisNotifier, RedisOptions};
use chat_store_memory::MemoryStore;
use chat_store_postgres::PgStore;
use tokio::task::JoinHandle;

pub use config::{Config, ConfigError, Environment, LogFormat, RedisConfig};

/// How often revocations of expired tokens are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// How long a graceful stop waits for open connections (in-flight requests,
/// WebSockets whose client does not read their close frame) before dropping
/// them, in seconds: short enough to exit within 10 s of SIGTERM.
pub const SHUTDOWN_GRACE_SECS: u64 = 8;

/// A built, bound, not yet awaited server.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    stop: ShutdownHandle,
    purge: JoinHandle<()>,
}

/// Stops a running [`Application`]: closes every WebSocket (1001, going
/// away), then stops accepting and drains in-flight requests. Cheap to
/// clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    realtime: Realtime,
    server: ServerHandle,
}

impl ShutdownHandle {
    /// Shuts the application down gracefully (with Redis: this instance
    /// leaves the cluster, so its users go offline everywhere at once).
    pub async fn shutdown(&self) {
        self.realtime.shutdown().await;
        self.server.stop(true).await;
    }

    /// Starts stopping the application without waiting (for `Drop`).
    pub fn stop_now(&self) {
        self.realtime.stop_now();
        // The stop command is sent when `stop` is called; awaiting only waits
        // for it to complete.
        drop(self.server.stop(false));
    }
}

/// The notifier this instance runs, kept beside the service to shut it
/// down.
#[derive(Clone)]
struct Realtime(Arc<dyn Notifier>);

impl Realtime {
    /// The Redis notifier when `REDIS_URL` is set, else the in-process hub.
    /// Redis out of reach at start is not fatal: the notifier serves this
    /// instance's connections and reconnects in the background.
    async fn start(config: &Config) -> io::Result<Self> {
        let Some(redis) = &config.redis else {
            tracing::info!("notifier: in-process hub (live delivery within this instance)");
            return Ok(Self(Arc::new(Hub::new(HubConfig::default()))));
        };
        let options = RedisOptions {
            heartbeat: redis.heartbeat,
            presence_ttl: redis.presence_ttl,
            ..RedisOptions::with_prefix(redis.prefix.clone())
        };
        let notifier = RedisNotifier::connect(&redis.url, options)
            .await
            .map_err(|err| io::Error::other(format!("REDIS_*: {err}")))?;
        tracing::info!(
            prefix = %redis.prefix,
            offline_bound = ?redis.offline_bound(),
            instance = notifier.instance_id(),
            "notifier: Redis (live delivery and presence across instances)"
        );
        if notifier.is_degraded() {
            tracing::warn!(
                "Redis is out of reach: serving this instance's connections only \
                 (/health says \"realtime\":\"degraded\") and reconnecting in the background"
            );
        }
        Ok(Self(Arc::new(notifier)))
    }

    /// Closes every WebSocket (1001); with Redis, also leaves the cluster.
    async fn shutdown(&self) {
        self.0.shutdown().await;
    }

    /// [`Realtime::shutdown`] without waiting, on the current runtime if
    /// there is one.
    fn stop_now(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let notifier = Arc::clone(&self.0);
            runtime.spawn(async move { notifier.shutdown().await });
        }
    }
}

impl Application {
    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the application.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// Serves until stopped (by a [`ShutdownHandle`]), then closes what is
    /// left.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let result = self.server.await;
        self.stop.realtime.shutdown().await;
        self.purge.abort();
        result
    }
}

/// Opens the store, wires the service and binds the HTTP server. Logs which
/// store, notifier and address it uses.
pub async fn build(config: Config) -> io::Result<Application> {
    // Before any adapter records anything: what is recorded with no
    // recorder installed is lost.
    let metrics = config.metrics_enabled.then(metrics::handle).flatten();
    let (stores, pg) = open_store(&config).await?;
    let realtime = Realtime::start(&config).await?;
    let service = Arc::new(service(&config, stores, Arc::clone(&realtime.0))?);
    // Where a hole in the Redis stream is filled from until this instance
    // has delivered a change. Without it (the store did not answer), such
    // a hole closes its connections with the resync code instead.
    if let Err(error) = service.start_realtime().await {
        tracing::warn!(%error, "could not read the store's latest position: a Redis outage before the first message closes connections for a resync");
    }
    let mut state = ApiState::new(service.clone(), config.http_settings());
    if let Some(handle) = metrics {
        let notifier = Arc::clone(&realtime.0);
        state = state.with_metrics(metrics::renderer(handle, move || {
            if let Some(pg) = &pg {
                pg.record_pool_metrics();
            }
            metrics::record_realtime(notifier.health());
        }));
    }

    // `chat_http::server` is actix-web's `HttpServer` for this app (same
    // dispatcher settings, TCP_NODELAY so that small frames written back to
    // back do not wait for the client's delayed ACK), with WebSockets taken
    // off the HTTP dispatcher once upgraded. Signals are handled by `run`,
    // which closes the WebSockets first.
    let listener = chat_http::server::bind(SocketAddr::new(config.bind_address, config.port))?;
    let addr = listener.local_addr()?;
    let options = ServerOptions {
        workers: config.workers,
        shutdown_timeout_secs: SHUTDOWN_GRACE_SECS,
    };
    let server = chat_http::server::serve(state, listener, &options)?;
    tracing::info!(environment = ?config.environment, "listening on http://{addr}");
    let stop = ShutdownHandle {
        realtime,
        server: server.handle(),
    };
    let purge = tokio::spawn(purge_revocations(service));
    Ok(Application {
        server,
        addr,
        stop,
        purge,
    })
}

/// [`build`], then serve until SIGINT or SIGTERM; on either, WebSockets are
/// closed with 1001 and in-flight requests drained.
pub async fn run(config: Config) -> io::Result<()> {
    // Listen before anything else, so a signal during start-up is not lost.
    let signal = shutdown_signal()?;
    let app = build(config).await?;
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown signal received: closing WebSockets, draining requests");
        stop.shutdown().await;
    });
    app.run_until_stopped().await
}

/// The configured store, and the PostgreSQL one again when it is that (for
/// its pool's metrics).
async fn open_store(config: &Config) -> io::Result<(Stores, Option<PgStore>)> {
    match &config.database {
        None => {
            tracing::warn!(
                "store: IN-MEMORY. Every user, room and message is LOST when the process \
                 stops. Set DATABASE_URL (or DB_HOST ...) to use PostgreSQL."
            );
            Ok((Stores::single(Arc::new(MemoryStore::new())), None))
        }
        Some(db) => {
            let target = chat_store_postgres::database_target(&db.url);
            tracing::info!(database = %target, pool_size = db.pool_size, "store: PostgreSQL");
            let store = PgStore::connect_with(&db.url, db.pool_size, db.statement_timeout)
                .await
                .map_err(io::Error::other)?;
            Ok((Stores::single(Arc::new(store.clone())), Some(store)))
        }
    }
}

fn service(
    config: &Config,
    stores: Stores,
    notifier: Arc<dyn Notifier>,
) -> io::Result<ChatService> {
    let hasher = BcryptHasher::new(config.bcrypt_cost).map_err(io::Error::other)?;
    let policy = AuthPolicy {
        token_lifetime: time_hours(config.jwt_expiry_hours),
        ..AuthPolicy::default()
    };
    Ok(ChatService::new(
        stores,
        notifier,
        Arc::new(hasher),
        Arc::new(JwtCodec::new(config.jwt_secret.as_bytes())),
        policy,
    )
    .with_message_rate_limit(config.message_rate_limit))
}

fn time_hours(hours: u32) -> time::Duration {
    time::Duration::hours(i64::from(hours))
}

/// Forgets revocations of tokens that expired anyway, every
/// [`PURGE_EVERY`].
async fn purge_revocations(service: Arc<ChatService>) {
    let mut ticks = tokio::time::interval(PURGE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match service.purge_expired_revocations().await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged expired token revocations"),
            Err(err) => {
                tracing::warn!(code = err.code(), error = %err, "purging revocations failed")
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
