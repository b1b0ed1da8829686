//! A small WebSocket client for the tests: connect with a bearer token or
//! the cookie, send JSON, receive JSON with a timeout, expect silence or a
//! close code.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{TestApp, TestUser};

/// How long a frame that should come may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long to listen before deciding that nothing is coming.
pub const QUIET: Duration = Duration::from_millis(300);

/// The WebSocket path.
pub const CONNECT_PATH: &str = "/api/ws/connect";

/// One open WebSocket.
pub struct WsClient {
    /// The socket, for tests that need raw frames.
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whose it is.
    pub username: String,
}

impl TestApp {
    /// `ws://127.0.0.1:PORT/api/ws/connect`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{CONNECT_PATH}", self.addr)
    }

    /// An upgrade request for `user`'s bearer token.
    pub fn ws_request(&self, user: &TestUser) -> Request {
        let mut request = self
            .ws_url()
            .into_client_request()
            .expect("a valid WebSocket URL");
        set(
            &mut request,
            "authorization",
            &format!("Bearer {}", user.token),
        );
        request
    }

    /// Opens a WebSocket as `user` (bearer token) and reads its
    /// `connection` frame.
    pub async fn ws(&self, user: &TestUser) -> WsClient {
        self.ws_with(user, self.ws_request(user)).await
    }

    /// Opens a WebSocket as `user` (bearer token) asking to replay what
    /// was stored after message `since` (`?since=`), and reads its
    /// `connection` frame.
    pub async fn ws_since(&self, user: &TestUser, since: &str) -> WsClient {
        let mut request = format!("{}?since={since}", self.ws_url())
            .into_client_request()
            .expect("a valid WebSocket URL");
        set(
            &mut request,
            "authorization",
            &format!("Bearer {}", user.token),
        );
        self.ws_with(user, request).await
    }

    /// Opens a WebSocket as `user` with the token in the `jwt_token`
    /// cookie, as a browser does, and reads its `connection` frame.
    pub async fn ws_with_cookie(&self, user: &TestUser) -> WsClient {
        let mut request = self
            .ws_url()
            .into_client_request()
            .expect("a valid WebSocket URL");
        set(&mut request, "cookie", &format!("jwt_token={}", user.token));
        self.ws_with(user, request).await
    }

    /// Opens a WebSocket with this request and reads its `connection`
    /// frame, which must name `user`.
    pub async fn ws_with(&self, user: &TestUser, request: Request) -> WsClient {
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket opens");
        assert_eq!(response.status().as_u16(), 101);
        let mut client = WsClient {
            stream,
            username: user.username.clone(),
        };
        let hello = client.recv_json().await;
        assert_eq!(hello["type"], "connection", "first frame: {hello}");
        assert_eq!(hello["status"], "connected");
        assert_eq!(hello["user_id"], user.id.as_str());
        assert_eq!(hello["username"], user.username.as_str());
        client
    }

    /// A plain HTTP request with the WebSocket upgrade headers, to read
    /// the JSON body of a refused upgrade.
    pub fn upgrade_request(&self) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(CONNECT_PATH))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }
}

impl TestApp {
    /// A WebSocket as `user` on a socket with a tiny receive buffer (so
    /// the kernel does not absorb megabytes on the client's behalf), for a
    /// client that stops reading.
    pub async fn stalled_ws(&self, user: &TestUser) -> WebSocketStream<TcpStream> {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(self.addr).await.expect("connects");
        let (ws, response) = tokio_tungstenite::client_async(self.ws_request(user), stream)
            .await
            .expect("handshake");
        assert_eq!(response.status().as_u16(), 101);
        ws
    }
}

/// Sets a header on an upgrade request.
pub fn set(request: &mut Request, name: &str, value: &str) {
    request.headers_mut().insert(
        HeaderName::from_bytes(name.as_bytes()).expect("header name"),
        HeaderValue::from_str(value).expect("header value"),
    );
}

impl WsClient {
    /// Sends one JSON text frame.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("the frame is sent");
    }

    /// The next text frame, as JSON, within [`PATIENCE`]; WebSocket pings
    /// and pongs are skipped. Panics on anything else.
    pub async fn recv_json(&mut self) -> Value {
        match self.recv_within(PATIENCE).await {
            Some(value) => value,
            None => panic!("{}: no frame within {PATIENCE:?}", self.username),
        }
    }

    /// The next text frame that is not `presence` (routing tests do not
    /// care who comes and goes).
    pub async fn recv_event(&mut self) -> Value {
        loop {
            let value = self.recv_json().await;
            if value["type"] != "presence" {
                return value;
            }
        }
    }

    /// The next frame that is not `presence`, which must come from the
    /// store: it carries a `cursor` (a string), removed here so that the
    /// rest compares with what HTTP answered.
    pub async fn recv_stored(&mut self) -> Value {
        let mut frame = self.recv_event().await;
        let cursor = frame.as_object_mut().and_then(|o| o.remove("cursor"));
        assert!(
            cursor.as_ref().is_some_and(Value::is_string),
            "{}: a stored frame without a cursor: {frame}",
            self.username
        );
        frame
    }

    /// The next text frame within `wait`, or `None` if none came.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            let message = match next {
                Err(_elapsed) => return None,
                Ok(None) => panic!("{}: the socket ended", self.username),
                Ok(Some(Err(err))) => panic!("{}: socket error {err}", self.username),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).unwrap_or_else(|err| {
                        panic!(
                            "{}: a frame that is not one JSON object ({err}): {text}",
                            self.username
                        )
                    }))
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("{}: unexpected frame {other:?}", self.username),
            }
        }
    }

    /// Asserts that no frame other than `presence` comes within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                None => return,
                Some(value) if value["type"] == "presence" => continue,
                Some(value) => panic!(
                    "{} should have received nothing, got {value}",
                    self.username
                ),
            }
        }
    }

    /// Reads (skipping text frames) until the server's close frame, and
    /// returns its code; panics if the socket ends without one.
    pub async fn expect_close(&mut self) -> u16 {
        self.expect_close_frame().await.0
    }

    /// [`WsClient::expect_close`], with the close frame's reason.
    pub async fn expect_close_frame(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match next {
                Err(_elapsed) => panic!("{}: no close frame within {PATIENCE:?}", self.username),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => {
                    panic!("{}: error before a close frame: {err}", self.username)
                }
                Ok(None) => panic!("{}: the socket ended without a close frame", self.username),
            }
        }
    }

    /// Sends a `ping` frame and waits for its `pong`, skipping anything
    /// else: proves the socket is still usable.
    pub async fn assert_usable(&mut self) {
        self.send_json(serde_json::json!({"type": "ping"})).await;
        loop {
            let value = self.recv_json().await;
            if value["type"] == "pong" {
                assert_eq!(value, serde_json::json!({"type": "pong", "status": "ok"}));
                return;
            }
        }
    }

    /// Closes the socket normally and waits for the server's close frame
    /// (sent once the server has let go of the connection), not for the
    /// TCP connection to end: actix lingers up to a second before closing
    /// it.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(Ok(message)) = self.stream.next().await {
                if let Message::Close(_) = message {
                    return;
                }
            }
        })
        .await;
    }
}
