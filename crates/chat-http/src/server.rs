//! Serving the app on a listener: what actix-web's `HttpServer` does for
//! [`crate::app`], plus one thing it cannot: upgraded connections leave the
//! HTTP/1 dispatcher.
//!
//! Every connection is served by actix-http's dispatcher, with the same
//! settings `HttpServer` uses (keep-alive 5 s, request head within 5 s,
//! TCP_NODELAY). A request asking for an upgrade goes to the upgrade
//! service here instead, which runs the same app on it (auth, `Origin`,
//! request ids, metrics: nothing is skipped). When the WebSocket handler
//! accepts, it leaves its session in the request's slot
//! (`ws/bare.rs`); the service writes the 101 and runs the session
//! on the bare socket, and the dispatcher's buffers are let go. Any other answer to an upgrade request (401,
//! 403, 404, ...) is written with `Connection: close`, as its connection
//! cannot go back to the dispatcher.
//!
//! ```no_run
//! # async fn serve(state: chat_http::ApiState) -> std::io::Result<()> {
//! use chat_http::server::{bind, serve, ServerOptions};
//! let listener = bind("127.0.0.1:8080".parse().unwrap())?;
//! serve(state, listener, &ServerOptions::default())?.await
//! # }
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use actix_codec::{Encoder, Framed};
use actix_http::body::{self, BodySize, BoxBody, MessageBody};
use actix_http::{h1, ConnectionType, HttpService, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, map_config, IntoServiceFactory, Service};
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceResponse};
use actix_web::web::{Bytes, BytesMut};
use actix_web::HttpMessage;
use futures_util::future::LocalBoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::state::ApiState;
use crate::ws::bare::{self, BareUpgrade};

/// Connections waiting to be accepted, at most (actix-web's default): a
/// burst of reconnecting clients is queued, not refused.
const BACKLOG: i32 = 1024;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads (one app instance each); `None`: one per CPU.
    pub workers: Option<usize>,
    /// How long a graceful stop waits for in-flight requests, in seconds.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout_secs: 10,
        }
    }
}

/// A listener on `addr` (port 0: any free port), with address reuse and
/// the accept backlog set as actix-web's `HttpServer::bind` sets them.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves [`crate::app`] on `listener` until stopped through the returned
/// server's handle. Signals are not handled: the embedding binary decides
/// how to stop (the chat server closes its WebSockets first).
pub fn serve(
    state: ApiState,
    listener: TcpListener,
    options: &ServerOptions,
) -> io::Result<Server> {
    let addr = listener.local_addr()?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout_secs);
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let builder = builder.listen("chat-http", listener, move || {
        let app = crate::app(state.clone()).into_factory();
        HttpService::build()
            .keep_alive(Duration::from_secs(5))
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .local_addr(addr)
            .upgrade(upgrades(state.clone()))
            .finish(map_config(app, |()| AppConfig::default()))
            .tcp()
    })?;
    Ok(builder.run())
}

/// What an upgrade request arrives with: the request, and its connection
/// with the dispatcher's buffers.
type Upgrade = (Request, Framed<TcpStream, h1::Codec>);

/// The upgrade service of one worker: an app instance of its own, called
/// with each upgrade request.
fn upgrades(
    state: ApiState,
) -> impl ServiceFactory<Upgrade, Config = (), Response = (), Error = actix_web::Error, InitError = ()>
{
    fn_factory(move || {
        let app = crate::app(state.clone()).into_factory();
        async move {
            let app = Rc::new(app.new_service(AppConfig::default()).await?);
            Ok::<_, ()>(fn_service(move |(req, framed): Upgrade| {
                // Boxed: the connection's task is sized for this future,
                // for every connection, upgraded or not.
                let upgraded: LocalBoxFuture<'static, Result<(), actix_web::Error>> =
                    Box::pin(upgrade(Rc::clone(&app), req, framed));
                upgraded
            }))
        }
    })
}

/// Answers one upgrade request with the app; on a 101 with a session left
/// in the slot, runs that session on the socket.
async fn upgrade<S, B>(
    app: Rc<S>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // Boxed: the answer's state (the app's call, the HTTP codec) would
    // otherwise be part of this future, and so of every WebSocket's memory
    // for as long as its session runs.
    match Box::pin(answer(app, req, framed)).await {
        Ok(Some(Upgraded { session, body, io })) => bare::serve(session, body, io).await,
        Ok(None) => {}
        // The client went away while its answer was written: its doing,
        // not the server's error.
        Err(err) => tracing::debug!(error = %err, "an upgrade request's answer was not delivered"),
    }
    Ok(())
}

/// A connection whose upgrade was accepted: its session, the session's
/// response body and the socket, with the 101 written.
struct Upgraded {
    session: LocalBoxFuture<'static, ()>,
    body: BoxBody,
    io: Rc<TcpStream>,
}

/// Answers one upgrade request with the app: the 101 written and the
/// session left in the slot, ready to run on the socket; or any other
/// answer, written, and the connection closed.
async fn answer<S, B>(
    app: Rc<S>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<Option<Upgraded>, actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let slot = BareUpgrade::default();
    // The request reads the socket itself once upgraded.
    let (req, _none) = req.replace_payload(slot.payload());
    req.extensions_mut().insert(slot.clone());
    let response = match app.call(req).await {
        Ok(res) => Response::from(res.into_parts().1).map_into_boxed_body(),
        Err(err) => Response::from(err),
    };
    let parts = framed.into_parts();
    let (mut io, mut codec) = (parts.io, parts.codec);
    let (head, body) = response.into_parts();
    let mut out = BytesMut::new();
    match slot.take() {
        Some(session) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
            codec.encode(h1::Message::Item((head, BodySize::None)), &mut out)?;
            io.write_all(&out).await?;
            // What the client sent after its upgrade request; the
            // dispatcher's buffers go with `parts`.
            let early =
                (!parts.read_buf.is_empty()).then(|| Bytes::copy_from_slice(&parts.read_buf));
            drop((out, parts.read_buf, parts.write_buf));
            let io = Rc::new(io);
            slot.connect(Rc::clone(&io), early);
            Ok(Some(Upgraded { session, body, io }))
        }
        _ => {
            let mut head = head;
            head.head_mut().set_connection_type(ConnectionType::Close);
            let body = body::to_bytes(body).await.unwrap_or_default();
            let size = BodySize::Sized(u64::try_from(body.len()).unwrap_or(u64::MAX));
            codec.encode(h1::Message::Item((head, size)), &mut out)?;
            codec.encode(h1::Message::Chunk(Some(body)), &mut out)?;
            codec.encode(h1::Message::Chunk(None), &mut out)?;
            io.write_all(&out).await?;
            io.shutdown().await?;
            Ok(None)
        }
    }
}
