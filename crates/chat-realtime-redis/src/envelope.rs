//! What instances publish on the events channel: who sent it, who it is
//! for, and the frame text, serialized once by the publisher.
//!
//! Wire format (UTF-8 text):
//! `<origin>[@<position>] <audience>[ <message>]\n<frame>`, where
//! - `origin` is the publishing instance's id (a subscriber skips its own
//!   envelopes: it delivered them locally already), or `*` for envelopes
//!   every instance delivers, the sender included (presence, decided and
//!   published by a Lua script so that every instance sees presence in the
//!   one order Redis decided it);
//! - `position`, present only on frames of stored changes whose store
//!   reported one (messages, their changes, read markers), is the change's
//!   position in the store's order (decimal), handed to
//!   each connection with the frame so that a session resuming after a
//!   message (`?since=`) drops live frames at or below it;
//! - `audience` is `*` (every connection) or comma-separated user ids, or
//!   `~` for a sync marker, which an instance publishes to itself and
//!   whose body is a number (see `RedisNotifier::connect`), or `!` for a
//!   revoked token, whose body is `<user id> <token id>`, or `#` for a
//!   loss report: the origin could not publish some message frames (it
//!   lost Redis while the others kept it), and its body is how long ago,
//!   in milliseconds, the first of them was dropped: every instance fills
//!   that stretch from the store (an instance of an older version ignores
//!   the report as malformed);
//! - `message`, present only on frames about a stored message (`message`,
//!   `direct_message`, `message_updated`, and a reader's own `read`), is
//!   the id of the stored message the frame is about, handed to each
//!   connection with the frame so that a session replaying history
//!   (`?since=`) can drop live copies without parsing the JSON;
//! - `frame` is the JSON text handed to each connection as is.
//!
//! A line header rather than a JSON envelope: the frame is JSON already,
//! and nesting it in JSON would escape it on publish and unescape it on
//! every instance.
//!
//! **Why the position rides on the origin field.** Instances of two
//! versions share the channel during a rolling deploy. A decoder of the
//! version before positions refuses a header with a fourth field, and
//! parses the third as a message id, so a position there would make it
//! drop every message frame of a newer instance. It takes the origin as
//! an opaque id it only compares with its own: `<id>@<position>` never
//! equals an older instance's id, so it delivers the frame and ignores the
//! position, as it should. The other way round, a frame from an older
//! instance has no `@`, and is delivered without a position (the session
//! then de-duplicates it by message id only, as before).

use std::fmt::Write as _;
use std::str::FromStr;

use chat_domain::{Audience, MessageId, PresenceStatus, TokenId, UserId, Username};

/// The audience of envelopes for every connection.
const EVERYONE: &str = "*";
/// The origin of envelopes every instance reads, its own included: the
/// presence changes the presence scripts publish.
pub(crate) const ANY_ORIGIN: &str = "*";
/// The audience field of sync markers.
const SYNC: &str = "~";
/// The audience field of revoked tokens.
const REVOKED: &str = "!";
/// The audience field of loss reports.
const LOST: &str = "#";

/// What separates the origin from a message's position in the first
/// field.
const AT: char = '@';

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
        /// That message's position in the store's order, if the publisher
        /// knew it (never from instances of older versions).
        position: Option<u64>,
        /// The frame text.
        frame: &'a str,
    },
    /// A sync marker with its number.
    Sync(u64),
    /// A loss report: the origin dropped message frames, the first this
    /// long before it published the report.
    Lost(std::time::Duration),
    /// A token was revoked: its user's connections opened with it close.
    Revoked {
        /// Whose token.
        user: UserId,
        /// The token.
        token: TokenId,
    },
}

/// Encodes a sync marker.
pub(crate) fn encode_sync(origin: &str, token: u64) -> String {
    format!("{origin} {SYNC}\n{token}")
}

/// Encodes a revoked token.
pub(crate) fn encode_revoked(origin: &str, user: UserId, token: TokenId) -> String {
    format!("{origin} {REVOKED}\n{user} {token}")
}

/// Encodes a loss report: the first message frame the origin could not
/// publish was dropped `ago`.
pub(crate) fn encode_lost(origin: &str, ago: std::time::Duration) -> String {
    format!("{origin} {LOST}\n{}", ago.as_millis())
}

/// Whether an encoded envelope carries a stored change (whose loss
/// must be reported): a message, or a change with a position (a read
/// receipt names no message), as opposed to typing or a sync marker.
pub(crate) fn carries_message(envelope: &str) -> bool {
    let header = envelope
        .split_once('\n')
        .map_or(envelope, |(header, _)| header);
    let mut fields = header.split(' ');
    let positioned = fields.next().is_some_and(|origin| origin.contains(AT));
    positioned || fields.nth(1).is_some()
}

/// Encodes an envelope.
pub(crate) fn encode(
    origin: &str,
    audience: &Audience,
    message: Option<MessageId>,
    position: Option<u64>,
    frame: &str,
) -> String {
    let mut out = String::with_capacity(origin.len() + frame.len() + 96);
    out.push_str(origin);
    if let Some(position) = position {
        // Writing to a String cannot fail.
        let _ = write!(out, "{AT}{position}");
    }
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
    let (origin, position) = match origin.split_once(AT) {
        None => (origin, None),
        Some((origin, position)) => (origin, Some(decode_position(position)?)),
    };
    let body = if audience == LOST {
        let ms = frame
            .parse()
            .map_err(|_| format!("bad loss report {frame:?}"))?;
        Body::Lost(std::time::Duration::from_millis(ms))
    } else if audience == SYNC {
        let token = frame
            .parse()
            .map_err(|_| format!("bad sync marker {frame:?}"))?;
        Body::Sync(token)
    } else if audience == REVOKED {
        decode_revoked(frame)?
    } else {
        let message = message.map(decode_message).transpose()?;
        Body::Frame {
            audience: decode_audience(audience)?,
            position,
            message,
            frame,
        }
    };
    Ok(Envelope { origin, body })
}

/// A presence change as the presence scripts write it:
/// `{"type":"presence","username":…,"status":"online"|"offline"}`.
pub(crate) fn presence_change(frame: &str) -> Option<(Username, PresenceStatus)> {
    #[derive(serde::Deserialize)]
    struct Change {
        username: String,
        status: PresenceStatus,
    }
    let change: Change = serde_json::from_str(frame).ok()?;
    Some((Username::parse(change.username).ok()?, change.status))
}

fn decode_revoked(text: &str) -> Result<Body<'_>, String> {
    let bad = || format!("bad revoked token {text:?}");
    let (user, token) = text.split_once(' ').ok_or_else(bad)?;
    Ok(Body::Revoked {
        user: UserId::from_str(user).map_err(|_| bad())?,
        token: TokenId::from_str(token).map_err(|_| bad())?,
    })
}

fn decode_position(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("bad message position {text:?}"))
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
            let text = encode(
                "abc",
                &audience,
                None,
                None,
                r#"{"type":"pong","status":"ok"}"#,
            );
            let envelope = decode(text.as_bytes()).expect("decodes");
            assert_eq!(envelope.origin, "abc");
            let frame = r#"{"type":"pong","status":"ok"}"#;
            let message = None;
            assert_eq!(
                envelope.body,
                Body::Frame {
                    audience,
                    message,
                    position: None,
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
            let text = encode("abc", &audience, Some(id), None, r#"{"type":"message"}"#);
            let envelope = decode(text.as_bytes()).expect("decodes");
            let frame = r#"{"type":"message"}"#;
            let message = Some(id);
            assert_eq!(
                envelope.body,
                Body::Frame {
                    audience,
                    message,
                    position: None,
                    frame
                }
            );
        }
        assert!(decode(b"abc * not-an-id\n{}").is_err());
        assert!(decode(b"abc * 0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a extra\n{}").is_err());
    }

    #[test]
    fn round_trips_the_position_of_a_message_frame() {
        let id = MessageId::generate();
        let text = encode("abc", &Audience::Everyone, Some(id), Some(42), "{}");
        assert!(text.starts_with("abc@42 * "), "{text}");
        let envelope = decode(text.as_bytes()).expect("decodes");
        assert_eq!(envelope.origin, "abc", "the position is not the origin's");
        assert_eq!(
            envelope.body,
            Body::Frame {
                audience: Audience::Everyone,
                message: Some(id),
                position: Some(42),
                frame: "{}"
            }
        );
        // A change that names no message (a read receipt) keeps its
        // position.
        let text = encode("abc", &Audience::Everyone, None, Some(42), "{}");
        assert!(text.starts_with("abc@42 *\n"), "{text}");
        assert!(carries_message(&text), "its loss is reported");
        let envelope = decode(text.as_bytes()).expect("decodes");
        assert_eq!(
            envelope.body,
            Body::Frame {
                audience: Audience::Everyone,
                message: None,
                position: Some(42),
                frame: "{}"
            }
        );
        assert!(decode(b"abc@x * 0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a\n{}").is_err());
        assert!(decode(b"abc@ * 0192f1e6-4d7e-7c3a-9b1a-3f0e2d1c0b0a\n{}").is_err());
    }

    /// What the version before positions did with envelopes, verbatim: a
    /// rolling deploy runs it beside this one on the same channel.
    fn decode_as_before_positions(payload: &[u8]) -> Result<(&str, Option<MessageId>), String> {
        let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
        let (header, _frame) = text
            .split_once('\n')
            .ok_or_else(|| "no header line".to_owned())?;
        let mut fields = header.split(' ');
        let (Some(origin), Some(audience), message, None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed header {header:?}"));
        };
        decode_audience(audience)?;
        Ok((origin, message.map(decode_message).transpose()?))
    }

    #[test]
    fn instances_with_and_without_positions_understand_each_other() {
        let id = MessageId::generate();
        let user = UserId::generate();
        let audience = Audience::Users(vec![user]);
        // New to old: delivered (the origin is not the old instance's own)
        // with its message id; the position is ignored.
        let new = encode(
            "newer",
            &audience,
            Some(id),
            Some(7),
            r#"{"type":"message"}"#,
        );
        let (origin, message) = decode_as_before_positions(new.as_bytes()).expect("decodes");
        assert_ne!(origin, "older", "not taken for the old instance's own");
        assert_eq!(message, Some(id));
        // Old to new: delivered with its message id and no position.
        let old = format!("older {user} {id}\n{{\"type\":\"message\"}}");
        let envelope = decode(old.as_bytes()).expect("decodes");
        assert_eq!(envelope.origin, "older");
        assert_eq!(
            envelope.body,
            Body::Frame {
                audience,
                message: Some(id),
                position: None,
                frame: r#"{"type":"message"}"#
            }
        );
    }

    #[test]
    fn round_trips_a_revoked_token() {
        let (user, token) = (UserId::generate(), TokenId::generate());
        let text = encode_revoked("abc", user, token);
        let envelope = decode(text.as_bytes()).expect("decodes");
        assert_eq!(envelope.origin, "abc");
        assert_eq!(envelope.body, Body::Revoked { user, token });
        assert!(decode(b"abc !\nnope").is_err());
        assert!(decode(format!("abc !\n{user}").as_bytes()).is_err());
    }

    #[test]
    fn round_trips_a_loss_report_and_tells_message_frames_apart() {
        let ago = std::time::Duration::from_millis(1500);
        let text = encode_lost("abc", ago);
        let envelope = decode(text.as_bytes()).expect("decodes");
        assert_eq!(envelope.origin, "abc");
        assert_eq!(envelope.body, Body::Lost(ago));
        assert!(decode(b"abc #\nsoon").is_err());
        let id = MessageId::generate();
        let message = encode("abc", &Audience::Everyone, Some(id), Some(3), "{}");
        assert!(carries_message(&message));
        assert!(!carries_message(&encode(
            "abc",
            &Audience::Everyone,
            None,
            None,
            "{}"
        )));
        assert!(!carries_message(&encode_sync("abc", 1)));
        assert!(!carries_message(&text));
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
        let text = encode("abc", &Audience::Users(vec![]), None, None, "{}");
        let envelope = decode(text.as_bytes()).expect("decodes");
        let audience = Audience::Users(vec![]);
        assert_eq!(
            envelope.body,
            Body::Frame {
                audience,
                message: None,
                position: None,
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
        let change =
            presence_change(r#"{"type":"presence","username":"Alice","status":"offline"}"#);
        let alice = Username::parse("Alice").expect("valid");
        assert_eq!(change, Some((alice, PresenceStatus::Offline)));
        assert_eq!(
            presence_change(r#"{"type":"presence","username":"a"}"#),
            None
        );
    }
}
