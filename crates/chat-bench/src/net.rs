//! Opening authenticated WebSockets, many of them.
//!
//! Every connection to one server address from one source address uses one
//! ephemeral port, and Linux hands out about 28,000 of them
//! (`ip_local_port_range` 32768-60999). Past `per_source` connections the
//! dialer binds each socket to the next loopback source address (127.0.0.2,
//! 127.0.0.3, ...), all of which reach a server on 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async, WebSocketStream};

use crate::error::{BenchError, BenchResult};
use crate::frames::Frame;
use crate::target::Target;

/// An open WebSocket to the server.
pub type Ws = WebSocketStream<TcpStream>;

/// How a socket proves who it is: SPEC accepts both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// `Cookie: jwt_token=<jwt>`, as a browser sends it.
    Cookie,
}

/// Opens WebSockets to one server, rotating source addresses.
#[derive(Clone, Debug)]
pub struct Dialer {
    addr: SocketAddr,
    ws_url: String,
    auth: AuthMode,
    per_source: usize,
    timeout: Duration,
    /// Sockets opened so far by every clone: the next one's index, which
    /// picks its source address.
    opened: Arc<AtomicUsize>,
}

impl Dialer {
    /// A dialer for `target`; `per_source` connections per source address.
    pub fn new(target: &Target, auth: AuthMode, per_source: usize, timeout: Duration) -> Self {
        Self {
            addr: target.addr,
            ws_url: target.ws_url(),
            auth,
            per_source: per_source.max(1),
            timeout,
            opened: Arc::default(),
        }
    }

    /// Opens the next connection as the holder of `token` and waits for
    /// the server's `connection` frame, so that a returned socket is one the
    /// server has registered.
    pub async fn open(&self, token: &str) -> BenchResult<Ws> {
        self.open_since(token, None).await
    }

    /// [`Dialer::open`], asking the server to replay what was stored after
    /// message `since` (`/api/ws/connect?since=<id>`) before going live.
    pub async fn open_since(&self, token: &str, since: Option<&str>) -> BenchResult<Ws> {
        let index = self.opened.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let stream = self.tcp(index).await?;
            let mut ws = self.handshake(stream, token, since).await?;
            wait_for_connection_frame(&mut ws).await?;
            Ok(ws)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(BenchError::new(format!(
                    "opening a WebSocket took over {:?}",
                    self.timeout
                )))
            })
    }

    /// A dialer with the same settings for another server (another
    /// instance of the same deployment).
    pub fn to(&self, target: &Target) -> Self {
        Self::new(target, self.auth, self.per_source, self.timeout)
    }

    /// How many source addresses the sockets opened so far use.
    pub fn source_addresses(&self) -> usize {
        let opened = self.opened.load(Ordering::Relaxed);
        opened.div_ceil(self.per_source).max(1)
    }

    async fn tcp(&self, index: usize) -> BenchResult<TcpStream> {
        let io = |what: &str, e: std::io::Error| BenchError::new(format!("{what}: {e}"));
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| io("creating a socket (raise the open-file limit?)", e))?;
        if self.addr.is_ipv4() {
            if let Some(source) = source_address(index, self.per_source) {
                socket
                    .bind(SocketAddr::new(source.into(), 0))
                    .map_err(|e| io(&format!("binding to source {source}"), e))?;
            }
        }
        let stream = socket
            .connect(self.addr)
            .await
            .map_err(|e| io(&format!("connecting to {}", self.addr), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| io("setting TCP_NODELAY", e))?;
        Ok(stream)
    }

    async fn handshake(
        &self,
        stream: TcpStream,
        token: &str,
        since: Option<&str>,
    ) -> BenchResult<Ws> {
        let url = match since {
            Some(id) => format!("{}?since={id}", self.ws_url),
            None => self.ws_url.clone(),
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| BenchError::new(format!("WebSocket request: {e}")))?;
        let (name, value) = match self.auth {
            AuthMode::Bearer => (header::AUTHORIZATION, format!("Bearer {token}")),
            AuthMode::Cookie => (header::COOKIE, format!("jwt_token={token}")),
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| BenchError::new("the server issued a token that is not a valid header"))?;
        request.headers_mut().insert(name, value);
        let (ws, _response) = client_async(request, stream)
            .await
            .map_err(handshake_error)?;
        Ok(ws)
    }
}

fn handshake_error(e: WsError) -> BenchError {
    match e {
        WsError::Http(response) => BenchError::new(format!(
            "WebSocket upgrade refused with HTTP {}{}",
            response.status(),
            if response.status().as_u16() == 404 {
                " (the server has no /api/ws/connect yet?)"
            } else {
                ""
            }
        )),
        other => BenchError::new(format!("WebSocket handshake: {other}")),
    }
}

/// SPEC: the server's first frame is `{"type":"connection",...}`. A few
/// other frames (presence) may race it; anything else after 16 frames
/// means the server does not speak the protocol.
async fn wait_for_connection_frame(ws: &mut Ws) -> BenchResult<()> {
    for _ in 0..16 {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if Frame::parse(&text).is_some_and(|f| f.kind == "connection") {
                    return Ok(());
                }
            }
            Some(Ok(Message::Close(reason))) => {
                return Err(BenchError::new(format!(
                    "server closed the socket at open: {reason:?}"
                )))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(BenchError::new(format!("reading the first frame: {e}"))),
            None => return Err(BenchError::new("server closed the socket at open")),
        }
    }
    Err(BenchError::new(
        "no {\"type\":\"connection\"} frame among the first 16",
    ))
}

/// The source address for connection `index`: `None` (let the kernel pick,
/// normally 127.0.0.1) for the first `per_source`, then 127.0.0.2 for the
/// next `per_source`, and so on through 127.255.255.254.
pub fn source_address(index: usize, per_source: usize) -> Option<Ipv4Addr> {
    let block = u32::try_from(index / per_source.max(1)).ok()?;
    if block == 0 {
        return None;
    }
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    let ip = base.checked_add(block).filter(|ip| *ip <= last)?;
    Some(Ipv4Addr::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_block_uses_the_kernels_choice() {
        assert_eq!(source_address(0, 25_000), None);
        assert_eq!(source_address(24_999, 25_000), None);
    }

    #[test]
    fn later_blocks_rotate_through_loopback_addresses() {
        assert_eq!(
            source_address(25_000, 25_000),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(
            source_address(49_999, 25_000),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(
            source_address(50_000, 25_000),
            Some(Ipv4Addr::new(127, 0, 0, 3))
        );
        assert_eq!(source_address(255, 1), Some(Ipv4Addr::new(127, 0, 1, 0)));
    }

    #[test]
    fn rotation_never_leaves_loopback() {
        assert_eq!(
            source_address(16_777_213, 1),
            Some(Ipv4Addr::new(127, 255, 255, 254))
        );
        assert_eq!(source_address(16_777_214, 1), None);
        assert_eq!(source_address(usize::MAX, 1), None);
        assert_eq!(source_address(7, 0), Some(Ipv4Addr::new(127, 0, 0, 8)));
    }

    #[tokio::test]
    async fn a_bound_source_address_reaches_a_server_on_127_0_0_1() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let target = Target::parse(&format!("http://{addr}")).expect("loopback");
        let dialer = Dialer::new(&target, AuthMode::Bearer, 1, Duration::from_secs(5));
        let client = dialer.tcp(3).await.expect("connect from 127.0.0.4");
        let (_server_side, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)));
        assert_eq!(client.local_addr().expect("local").ip(), peer.ip());
    }
}
