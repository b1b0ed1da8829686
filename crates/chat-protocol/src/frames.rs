//! The WebSocket protocol: every text frame, both ways, is exactly one JSON
//! object with a `type`. These types are the contract of SPEC's WebSocket
//! section; adapters serialize and parse them, never hand-build JSON.

use serde::{Deserialize, Serialize};

use chat_domain::{
    DomainError, Message, MessageId, ReadMarker, RoomId, UserId, UserPresence, Username,
};

/// A frame a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Send a message: global, or to `recipient`, or to `room_id`.
    Message {
        /// The text (validated by the send use case).
        content: String,
        /// A username, for a direct message.
        #[serde(default, deserialize_with = "blank_as_none")]
        recipient: Option<String>,
        /// A room, for a room message.
        #[serde(default, deserialize_with = "blank_room_as_none")]
        room_id: Option<RoomId>,
        /// An idempotency key; the server answers `ack` with it.
        #[serde(default, deserialize_with = "blank_as_none")]
        client_id: Option<String>,
        /// The message this one replies to in a thread.
        #[serde(default, deserialize_with = "blank_message_as_none")]
        reply_to: Option<MessageId>,
    },
    /// Keep-alive; answered by `pong`.
    Ping,
    /// Follow these users' presence: their status now, then changes.
    PresenceSubscribe {
        /// Usernames.
        usernames: Vec<String>,
    },
    /// Stop following these users' presence.
    PresenceUnsubscribe {
        /// Usernames.
        usernames: Vec<String>,
    },
    /// "I am typing" to a user or a room; relayed, not stored.
    Typing {
        /// A username.
        #[serde(default, deserialize_with = "blank_as_none")]
        recipient: Option<String>,
        /// A room.
        #[serde(default, deserialize_with = "blank_room_as_none")]
        room_id: Option<RoomId>,
    },
}

/// Old clients send `""` (or `null`) for an absent recipient or room, as
/// they do over HTTP: both mean "absent".
fn blank_as_none<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

/// A message id, where `""` and `null` mean "absent".
fn blank_message_as_none<'de, D>(deserializer: D) -> Result<Option<MessageId>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value: Option<String> = Option::deserialize(deserializer)?;
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("reply_to must be a message id (a UUID)")),
    }
}

/// A room id, where `""` and `null` mean "absent".
fn blank_room_as_none<'de, D>(deserializer: D) -> Result<Option<RoomId>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    blank_as_none(deserializer)?
        .map(|raw| raw.trim().parse::<RoomId>())
        .transpose()
        .map_err(serde::de::Error::custom)
}

impl ClientFrame {
    /// Parses one text frame. Errors say what was wrong in a sentence a
    /// client author can act on (`invalid_frame` / `unknown_type`).
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FrameError::invalid(format!("frame is not valid JSON: {e}")))?;
        let Some(kind) = value
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
        else {
            return Err(FrameError::invalid(
                "frame must be a JSON object with a string \"type\"".into(),
            ));
        };
        if !matches!(
            kind.as_str(),
            "message" | "ping" | "typing" | "presence_subscribe" | "presence_unsubscribe"
        ) {
            return Err(FrameError {
                code: "unknown_type",
                error: format!(
                    "unknown frame type {kind:?}; expected message, ping, typing, \
                     presence_subscribe or presence_unsubscribe"
                ),
                client_id: value
                    .get("client_id")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned),
            });
        }
        let client_id = value
            .get("client_id")
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        serde_json::from_value(value).map_err(|e| FrameError {
            code: "invalid_frame",
            error: format!("invalid {kind} frame: {e}"),
            client_id,
        })
    }
}

/// Why a client frame could not be understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// `invalid_frame` or `unknown_type`.
    pub code: &'static str,
    /// A sentence for the client author.
    pub error: String,
    /// The frame's `client_id`, when it had one.
    pub client_id: Option<String>,
}

impl FrameError {
    fn invalid(error: String) -> Self {
        Self {
            code: "invalid_frame",
            error,
            client_id: None,
        }
    }

    /// The error frame answering this.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::Error {
            error: self.error.clone(),
            code: self.code.to_owned(),
            client_id: self.client_id.clone(),
        }
    }
}

/// The `cursor` of a frame at `position` in the store's order: opaque to
/// clients, who only hand it back as `?since=`. Today the position's
/// decimal digits, which can never be mistaken for a message id.
pub fn cursor(position: u64) -> String {
    position.to_string()
}

/// The position a `cursor` names, if it is one.
pub fn parse_cursor(cursor: &str) -> Option<u64> {
    if cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cursor.parse().ok()
}

/// A frame the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Sent once when a connection opens.
    Connection {
        /// Always `connected`.
        status: String,
        /// The user's id.
        user_id: UserId,
        /// The user's name.
        username: Username,
    },
    /// A global or room message.
    Message {
        /// The stored message.
        message: Message,
        /// Its place in the user's stream of changes (see [`cursor`]).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cursor: Option<String>,
    },
    /// A direct message, to both parties.
    DirectMessage {
        /// The stored message.
        message: Message,
        /// Its place in the user's stream of changes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cursor: Option<String>,
    },
    /// A stored message was edited, deleted, or its reactions changed:
    /// its whole current state.
    MessageUpdated {
        /// The message as it now is.
        message: Message,
        /// The change's place in the user's stream of changes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cursor: Option<String>,
    },
    /// A read marker moved: `username` has read the conversation `kind`
    /// / `id` (named as the receiving user names it: for a direct
    /// conversation, the other party) up to `message_id`. To the reader's
    /// own connections and, in a direct conversation, to the other party
    /// (a read receipt).
    Read {
        /// `global`, `direct` or `room`.
        kind: String,
        /// `global`, the other party's username, or the room's id.
        id: String,
        /// Who read.
        username: Username,
        /// The last message they have read.
        message_id: MessageId,
        /// The move's place in the user's stream of changes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cursor: Option<String>,
    },
    /// The presence of users the connection follows: all of those it just
    /// subscribed to, then only changes, batched.
    Presence {
        /// Each user's latest status.
        users: Vec<UserPresence>,
    },
    /// Someone is typing.
    Typing {
        /// Who is typing.
        username: Username,
        /// To whom, for a direct conversation.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        recipient: Option<Username>,
        /// Where, for a room.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        room_id: Option<RoomId>,
    },
    /// Answer to `ping`.
    Pong {
        /// Always `ok`.
        status: String,
    },
    /// The message with this client id is stored.
    Ack {
        /// The client's idempotency key.
        client_id: String,
        /// The stored (or original) message.
        message: Message,
        /// The message's place in the user's stream of changes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cursor: Option<String>,
    },
    /// A frame could not be handled; the connection stays open.
    Error {
        /// A sentence.
        error: String,
        /// A snake_case code.
        code: String,
        /// The offending frame's client id, when it had one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        client_id: Option<String>,
    },
}

impl ServerFrame {
    /// The frame that carries a stored message: `direct_message` for direct
    /// messages, `message` otherwise.
    pub fn for_message(message: Message) -> Self {
        Self::for_message_at(message, None)
    }

    /// [`for_message`](Self::for_message) with the message's position in
    /// the store's order, sent as its `cursor`.
    pub fn for_message_at(message: Message, position: Option<u64>) -> Self {
        let cursor = position.map(cursor);
        if message.recipient().is_some() {
            Self::DirectMessage { message, cursor }
        } else {
            Self::Message { message, cursor }
        }
    }

    /// The `message_updated` frame of a change at `position`.
    pub fn updated_at(message: Message, position: Option<u64>) -> Self {
        Self::MessageUpdated {
            message,
            cursor: position.map(cursor),
        }
    }

    /// The `read` frame of a marker move at `position`.
    pub fn read_at(read: ReadMarker, position: Option<u64>) -> Self {
        Self::Read {
            kind: read.conversation.kind().to_owned(),
            id: read.conversation.id(),
            username: read.reader,
            message_id: read.message_id,
            cursor: position.map(cursor),
        }
    }

    /// The `error` frame for a refused request.
    pub fn from_error(error: &DomainError, client_id: Option<String>) -> Self {
        Self::Error {
            error: error.to_string(),
            code: error.code().to_owned(),
            client_id,
        }
    }

    /// The `pong` frame.
    pub fn pong() -> Self {
        Self::Pong {
            status: "ok".into(),
        }
    }

    /// Serializes the frame to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail: no maps with
        // non-string keys, no custom serializers that error.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","error":"frame encoding failed: {e}","code":"internal_error"}}"#
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::PresenceStatus;

    #[test]
    fn parses_each_client_frame() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        let m = ClientFrame::parse(
            r#"{"type":"message","content":"hi","recipient":"bob","client_id":"c1"}"#,
        );
        assert!(
            matches!(m, Ok(ClientFrame::Message { ref recipient, .. }) if recipient.as_deref() == Some("bob"))
        );
        let t = ClientFrame::parse(r#"{"type":"typing","recipient":"bob"}"#);
        assert!(matches!(t, Ok(ClientFrame::Typing { .. })));
        assert_eq!(
            ClientFrame::parse(r#"{"type":"presence_subscribe","usernames":["bob","eve"]}"#),
            Ok(ClientFrame::PresenceSubscribe {
                usernames: vec!["bob".into(), "eve".into()]
            })
        );
        let missing = ClientFrame::parse(r#"{"type":"presence_unsubscribe"}"#);
        assert_eq!(missing.map_err(|e| e.code), Err("invalid_frame"));
    }

    #[test]
    fn bad_frames_say_why() {
        assert_eq!(
            ClientFrame::parse("{nope").map_err(|e| e.code),
            Err("invalid_frame")
        );
        assert_eq!(
            ClientFrame::parse("[1]").map_err(|e| e.code),
            Err("invalid_frame")
        );
        let unknown =
            ClientFrame::parse(r#"{"type":"dance","client_id":"x"}"#).expect_err("unknown");
        assert_eq!(unknown.code, "unknown_type");
        assert_eq!(unknown.client_id.as_deref(), Some("x"));
        let wrong = ClientFrame::parse(r#"{"type":"message","content":5,"client_id":"y"}"#)
            .expect_err("type");
        assert_eq!(wrong.code, "invalid_frame");
        assert_eq!(wrong.client_id.as_deref(), Some("y"));
    }

    #[test]
    fn blank_targets_mean_absent() {
        let m = ClientFrame::parse(
            r#"{"type":"message","content":"hi","recipient":"","room_id":"","client_id":null}"#,
        );
        assert_eq!(
            m,
            Ok(ClientFrame::Message {
                content: "hi".into(),
                recipient: None,
                room_id: None,
                client_id: None,
                reply_to: None,
            })
        );
        let bad = ClientFrame::parse(r#"{"type":"typing","room_id":"nope"}"#).expect_err("uuid");
        assert_eq!(bad.code, "invalid_frame");
        assert!(bad.error.contains("room_id"), "{}", bad.error);
    }

    #[test]
    fn server_frames_have_the_spec_shape() {
        let pong: serde_json::Value =
            serde_json::from_str(&ServerFrame::pong().to_json()).expect("json");
        assert_eq!(pong, serde_json::json!({"type":"pong","status":"ok"}));
        let presence = ServerFrame::Presence {
            users: vec![
                UserPresence {
                    username: "bob".into(),
                    status: PresenceStatus::Offline,
                },
                UserPresence {
                    username: "nobody".into(),
                    status: PresenceStatus::Unknown,
                },
            ],
        };
        let v: serde_json::Value = serde_json::from_str(&presence.to_json()).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type":"presence","users":[
                {"username":"bob","status":"offline"},
                {"username":"nobody","status":"unknown"},
            ]})
        );
    }
}
