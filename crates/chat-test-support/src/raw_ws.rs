//! A raw WebSocket client on a bare TCP stream, for what a well-behaved
//! client library cannot send: frames sent behind the upgrade request,
//! malformed close frames, a frame header that declares gigabytes.
//! Upgrades go to `prefix` + `/api/ws/connect` with a bearer token.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// How long a frame that should come may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// The WebSocket path.
pub const CONNECT_PATH: &str = "/api/ws/connect";

/// A masking key for client frames; any will do.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A WebSocket upgrade request to `addr` for `path`, with these extra
/// header lines (each ending in `\r\n`).
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A masked (client-to-server) frame with this first byte (FIN, opcode).
pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_header(first, payload.len() as u64);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// A masked client frame header declaring `len` payload bytes.
pub fn client_header(first: u8, len: u64) -> Vec<u8> {
    let mut header = vec![first];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xffff => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header.extend_from_slice(&MASK);
    header
}

/// A masked text frame.
pub fn client_text_frame(text: &str) -> Vec<u8> {
    client_frame(0x81, text.as_bytes())
}

/// Reads the response head (through the blank line), and what came after
/// it in the same reads.
pub async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut read = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = read.split_off(end + 4);
            return (String::from_utf8(read).expect("an ASCII head"), rest);
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("the head in time")
            .expect("reads");
        assert!(n > 0, "the server closed before its head: {read:?}");
        read.extend_from_slice(chunk.get(..n).expect("within the chunk"));
    }
}

/// A WebSocket on a bare stream.
pub struct RawWs {
    reader: OwnedReadHalf,
    writer: Option<OwnedWriteHalf>,
    /// Bytes read but not yet parsed into frames.
    read: Vec<u8>,
}

impl RawWs {
    /// A WebSocket opened on the server at `addr` with `token`, on a bare
    /// TCP stream whose send buffer is `send_buffer` bytes, with the
    /// server's `connection` frame read.
    pub async fn open(addr: SocketAddr, token: &str, send_buffer: u32) -> Self {
        Self::open_under(addr, "", token, send_buffer).await
    }

    /// [`RawWs::open`] for a server that mounts the chat API under
    /// `prefix` (such as `/chat`).
    pub async fn open_under(addr: SocketAddr, prefix: &str, token: &str, send_buffer: u32) -> Self {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket.set_send_buffer_size(send_buffer).expect("SO_SNDBUF");
        let mut stream = socket.connect(addr).await.expect("connects");
        let auth = format!("Authorization: Bearer {token}\r\n");
        let request = upgrade_request(addr, &format!("{prefix}{CONNECT_PATH}"), &auth);
        stream.write_all(request.as_bytes()).await.expect("writes");
        let (head, read) = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (reader, writer) = stream.into_split();
        let mut ws = RawWs {
            reader,
            writer: Some(writer),
            read,
        };
        let (opcode, hello) = ws.frame().await.expect("the connection frame");
        assert_eq!(opcode, 0x1, "a text frame first");
        assert!(
            String::from_utf8_lossy(&hello).contains("\"connection\""),
            "{hello:?}"
        );
        ws
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        let writer = self.writer.as_mut().expect("the writing half is here");
        writer.write_all(bytes).await.expect("writes");
    }

    /// The writing half, for a test that writes while it reads.
    pub fn take_writer(&mut self) -> OwnedWriteHalf {
        self.writer.take().expect("the writing half is here")
    }

    /// The server's next frame (opcode, payload), or `None` once the
    /// server closed the connection.
    pub async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(PATIENCE, self.reader.read(&mut chunk))
                .await
                .expect("a frame in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.read.extend_from_slice(chunk.get(..n)?);
        }
    }

    /// The code of the server's close frame, skipping frames before it.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let (opcode, payload) = self.frame().await?;
            if opcode == 0x8 {
                let code = payload.get(..2)?;
                return Some(u16::from_be_bytes([code[0], code[1]]));
            }
        }
    }

    /// Reads to the end of the server's stream; whether it ended (rather
    /// than failed) within the patience.
    pub async fn ends(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.reader.read_to_end(&mut rest)).await;
        matches!(read, Ok(Ok(_)))
    }
}

/// One unmasked server frame at the start of `bytes`, and its length.
fn parse_server_frame(bytes: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    let (&first, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let (len, header) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        127 => return None,
        len => (usize::from(len), 2),
    };
    let payload = bytes.get(header..header + len)?.to_vec();
    Some(((first & 0x0f, payload), header + len))
}
