//! What instances publish on the events channel: who sent it, who it is
//! for, and the frame text, serialized once by the publisher.
//!
//! Wire format (UTF-8 text): `<origin> <audience>[ <message>]\n<frame>`,
//! where
//! - `origin` is the publishing instance's id (a subscriber skips its own
//!   envelopes: it delivered them locally already), or `*` for envelopes
//!   every instance delivers, the sender included (presence, decided and
//!   published by a Lua script so that every instance sees presence in the
//!   one order Redis decided it);
//! - `audience` is `*` (every connection) or comma-separated user ids, or
//!   `~` for a sync marker, which an instance publishes to itself and
//!   whose body is a number (see `RedisNotifier::connect`);
//! - `message`, present only on `message` and `direct_message` frames, is
//!   the id of the stored message the frame carries, handed to each
//!   connection with the frame so that a session replaying history
//!   (`?since=`) can drop live copies without parsing the JSON;
//! - `frame` is the JSON text handed to each connection as is.
//!
//! A line header rather than a JSON envelope: the frame is JSON already,
//! and nesting it in JSON would escape it on publish and unescape it on
//! every instance.

use std::fmt::Write as _;
use std::str::FromStr;

use chat_domain::{Audience, MessageId, UserId};

/// The audience of envelopes for every connection.
const EVERYONE: &str = "*";
/// The audience field of sync markers.
const SYNC: &str = "~";

/// A decoded envelope, borrowing from the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// The publishing instance, or `*` (every instance delivers it).
    pub(crate) origin: &'a str,
    /// What it carries.
    pub(crate) body: Body<'a>,
}

/// What an envelope carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// A frame for an audience.
    Frame {
        /// Who gets the frame.
        audience: Audience,
        /// The stored message the frame carries, if any.
        message: Option<MessageId>,
        /// The frame text.
        frame: &'a str,
    },
    /// A sync marker with its number.
    Sync(u64),
}

/// Encodes a sync marker.
pub(crate) fn encode_sync(origin: &str, token: u64) -> String {
    format!("{origin} {SYNC}\n{token}")
}

/// Encodes an envelope.
pub(crate) fn encode(
    origin: &str,
    audience: &Audience,
    message: Option<MessageId>,
    frame: &str,
) -> String {
    let mut out = String::with_capacity(origin.len() + frame.len() + 96);
    out.push_str(origin);
    out.push(' ');
    match audience {
        Audience::Everyone => out.push_str(EVERYONE),
        Audience::Users(users) => {
            for (i, user) in users.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Writing to a String cannot fail.
                let _ = write!(out, "{user}");
            }
        }
    }
    if let Some(id) = message {
        // Writing to a String cannot fail.
        let _ = write!(out, " {id}");
    }
    out.push('\n');
    out.push_str(frame);
    out
}

/// Decodes an envelope read from Redis. Anything malformed is an error
/// saying what, never a panic: the payload comes from the network.
pub(crate) fn decode(payload: &[u8]) -> Result<Envelope<'_>, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
    let (header, frame) = text
        .split_once('\n')
        .ok_or_else(|| "no header line".to_owned())?;
    let mut fields = header.split(' ');
    let (Some(origin), Some(audience), message, None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("malformed header {header:?}"));
    };
    let body = if audience == SYNC {
        let token = frame
            .parse()
            .map_err(|_| format!("bad sync marker {frame:?}"))?;
        Body::Sync(token)
    } else {
        Body::Frame {
            audience: decode_audience(audience)?,
            message: message.map(decode_message).transpose()?,
            frame,
        }
    };
    Ok(Envelope { origin, body })
}

fn decode_message(text: &str) -> Result<MessageId, String> {
    MessageId::from_str(text).map_err(|_| format!("bad message id {text:?}"))
}

fn decode_audience(text: &str) -> Result<Audience, String> {
    if text == EVERYONE {
        return Ok(Audience::Everyone);
    }
    if text.is_empty() {
        return Ok(Audience::Users(Vec::new()));
    }
    text.split(',')
        .map(|id| UserId::from_str(id).map_err(|_| format!("bad user id {id:?}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Audience::Users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_audiences() {
        let (a, b) = (UserId::generate(), UserId::generate());
        for audience in [Audience::Everyone, Audience::Users(vec![a, b])] {
            let text = encode("abc", &audience, None, r#"{"type":"pong","status":"ok"}"#);
            let envelope = decode(text.as_bytes()).expect("decodes");
            assert_eq!(envelope.origin, "abc");
            let frame = r#"{"type":"pong","status":"ok"}"#;
            let message = None;
            assert_eq!(
                envelope.body,
                Body::Frame {
                    audience,
                    message,
                    frame
                }
            );
        }
    }

    #[test]
    fn round_trips_the_message_id_of_a_message_frame() {
        let id = MessageId::generate();
        let user = UserId::generate();
        for audience in [
            Audience::Everyone,
            Audience::Users(vec![user]),
            Audience::Users(vec![]),
        ] {
            let text = encode("abc", &audience, Some(id), r#"{"type":"message"}"#);
            let envelope = decode(text.as_bytes()).expect("decodes");
            let frame = r#"{"type":"message"}"#;
            let message = Some(id);
            assert_eq!(
                envelope.body,
                Body::Frame {
                    audience,
                    message,
                    frame
                }
            );
        }
        assert!(decode(b"abc * not-an-id\n{}").is_err());
        assert!(decode(b"abc * 0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a extra\n{}").is_err());
    }

    #[test]
    fn round_trips_a_sync_marker() {
        let text = encode_sync("abc", 42);
        let envelope = decode(text.as_bytes()).expect("decodes");
        assert_eq!(envelope.origin, "abc");
        assert_eq!(envelope.body, Body::Sync(42));
        assert!(decode(b"abc ~\nnope").is_err());
    }

    #[test]
    fn an_empty_user_list_reaches_nobody() {
        let text = encode("abc", &Audience::Users(vec![]), None, "{}");
        let envelope = decode(text.as_bytes()).expect("decodes");
        let audience = Audience::Users(vec![]);
        assert_eq!(
            envelope.body,
            Body::Frame {
                audience,
                message: None,
                frame: "{}"
            }
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(decode(b"no newline").is_err());
        assert!(decode(b"noblank\n{}").is_err());
        assert!(decode(b"abc not-a-uuid\n{}").is_err());
        assert!(decode(&[0xff, b'\n']).is_err());
    }

    #[test]
    fn the_presence_format_of_the_lua_scripts_decodes() {
        let envelope =
            decode(b"* *\n{\"type\":\"presence\",\"username\":\"a\",\"status\":\"online\"}")
                .expect("decodes");
        assert_eq!(envelope.origin, "*", "delivered by every instance");
        assert!(matches!(
            envelope.body,
            Body::Frame {
                audience: Audience::Everyone,
                ..
            }
        ));
    }
}
