//! # chat-protocol
//!
//! The WebSocket protocol of the chat service, in one place: the frames a
//! client sends ([`ClientFrame`]) and the server sends ([`ServerFrame`]),
//! their JSON (every text frame, both ways, is exactly one JSON object with
//! a `type`), and the close codes with the reason each one gives
//! ([`close`]). The domain speaks in events and errors; the HTTP adapter's
//! WebSocket endpoint and the realtime adapters turn those into these
//! frames.
//!
//! ```
//! use chat_protocol::{ClientFrame, ServerFrame};
//!
//! assert_eq!(ClientFrame::parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
//! assert_eq!(ServerFrame::pong().to_json(), r#"{"type":"pong","status":"ok"}"#);
//! let refused = ClientFrame::parse(r#"{"type":"dance"}"#).unwrap_err();
//! assert_eq!(refused.code, "unknown_type");
//! ```

pub mod close;
mod frames;

pub use close::Close;
pub use frames::{cursor, parse_cursor, ClientFrame, FrameError, ServerFrame};
