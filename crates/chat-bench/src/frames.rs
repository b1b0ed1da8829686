//! The parts of server frames the benchmark looks at, parsed without
//! copying. The tool speaks SPEC's wire format with plain serde rather than
//! depending on the server's crates, so it can measure any implementation.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::json;

/// A server frame: `connection`, `message`, `direct_message`, `ack`,
/// `error`, `presence`, ... Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// The frame's `type`.
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    /// The stored message, in `message`, `direct_message` and `ack`.
    #[serde(borrow, default)]
    pub message: Option<FrameMessage<'a>>,
    /// An `error` frame's code.
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
}

/// The part of a Message the benchmark reads.
#[derive(Debug, Deserialize)]
pub struct FrameMessage<'a> {
    /// Carries `bench:<run>:<seq>:<unix_nanos>`.
    #[serde(borrow)]
    pub content: Cow<'a, str>,
    /// The message's id.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// The room, for a room message.
    #[serde(borrow, default)]
    pub room_id: Option<Cow<'a, str>>,
    /// The message's reactions (`message_updated` frames).
    #[serde(borrow, default)]
    pub reactions: Vec<FrameReaction<'a>>,
}

/// One reaction of a message: the part the benchmark reads.
#[derive(Debug, Deserialize)]
pub struct FrameReaction<'a> {
    /// The emoji.
    #[serde(borrow)]
    pub emoji: Cow<'a, str>,
}

impl<'a> Frame<'a> {
    /// Parses one text frame; `None` for anything that is not a JSON object
    /// with a string `type`.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The message content, for frames that carry a message.
    pub fn content(&self) -> Option<&str> {
        self.message.as_ref().map(|m| m.content.as_ref())
    }

    /// The id of the message, for frames that carry one.
    pub fn message_id(&self) -> Option<&str> {
        self.message.as_ref()?.id.as_deref()
    }

    /// The room of the message, for frames that carry a room message.
    pub fn room_id(&self) -> Option<&str> {
        self.message.as_ref()?.room_id.as_deref()
    }

    /// Whether the message carries a reaction with `emoji`.
    pub fn has_reaction(&self, emoji: &str) -> bool {
        self.message
            .as_ref()
            .is_some_and(|m| m.reactions.iter().any(|r| r.emoji == emoji))
    }
}

/// The client frame sending `content` to room `room_id`, acknowledged
/// under `client_id`.
pub fn room_frame(content: &str, room_id: &str, client_id: &str) -> String {
    json!({ "type": "message", "content": content, "room_id": room_id, "client_id": client_id })
        .to_string()
}

/// The client frame sending `content` globally, or to `recipient`, with an
/// optional `client_id` that makes the server acknowledge the store.
pub fn send_frame(content: &str, recipient: Option<&str>, client_id: Option<&str>) -> String {
    let mut frame = json!({ "type": "message", "content": content });
    if let Some(recipient) = recipient {
        frame["recipient"] = json!(recipient);
    }
    if let Some(client_id) = client_id {
        frame["client_id"] = json!(client_id);
    }
    frame.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_frames_expose_their_content() {
        let text = r#"{"type":"message","message":{"id":"m1","sender":"b1_s0","recipient":null,"room_id":null,"content":"bench:r:1:2","created_at":"2026-01-01T00:00:00Z"}}"#;
        let frame = Frame::parse(text).expect("a message frame");
        assert_eq!(frame.kind, "message");
        assert_eq!(frame.content(), Some("bench:r:1:2"));
        assert_eq!(frame.message_id(), Some("m1"));
        assert_eq!(frame.room_id(), None);
        let room = Frame::parse(
            r#"{"type":"message","message":{"id":"m2","room_id":"r9","content":"x"}}"#,
        )
        .expect("a room message frame");
        assert_eq!(room.room_id(), Some("r9"));
    }

    #[test]
    fn updated_messages_expose_their_reactions() {
        let text = r#"{"type":"message_updated","message":{"id":"m1","content":"x","reactions":[{"emoji":"\u2764\ufe0f","count":1,"users":["a"]},{"emoji":"👍","count":2,"users":["a","b"]}]},"cursor":"9"}"#;
        let frame = Frame::parse(text).expect("a message_updated frame");
        assert!(frame.has_reaction("👍"));
        assert!(
            frame.has_reaction("\u{2764}\u{fe0f}"),
            "escaped in the JSON"
        );
        assert!(!frame.has_reaction("🎉"));
        let bare =
            Frame::parse(r#"{"type":"message_updated","message":{"id":"m1","content":"x"}}"#)
                .expect("no reactions field");
        assert!(!bare.has_reaction("👍"));
    }

    #[test]
    fn acks_carry_their_message_and_errors_their_code() {
        let ack = Frame::parse(r#"{"type":"ack","client_id":"7","message":{"content":"x"}}"#)
            .expect("ack");
        assert_eq!((ack.kind.as_ref(), ack.content()), ("ack", Some("x")));
        let err = Frame::parse(
            r#"{"type":"error","error":"slow down","code":"rate_limited","client_id":"8"}"#,
        )
        .expect("error");
        assert_eq!(err.code.as_deref(), Some("rate_limited"));
        assert_eq!(err.content(), None);
    }

    #[test]
    fn escaped_text_and_garbage_are_handled() {
        let frame = Frame::parse(r#"{"type":"message","message":{"content":"a\"b"}}"#)
            .expect("escaped content");
        assert_eq!(frame.content(), Some("a\"b"));
        assert!(Frame::parse("not json").is_none());
        assert!(Frame::parse(r#"{"no_type":1}"#).is_none());
    }

    #[test]
    fn send_frames_follow_the_spec() {
        let global: serde_json::Value =
            serde_json::from_str(&send_frame("hi", None, None)).expect("json");
        assert_eq!(global, json!({"type":"message","content":"hi"}));
        let direct: serde_json::Value =
            serde_json::from_str(&send_frame("hi", Some("bob"), Some("3"))).expect("json");
        assert_eq!(
            direct,
            json!({"type":"message","content":"hi","recipient":"bob","client_id":"3"})
        );
    }
}
