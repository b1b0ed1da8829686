//! Validated value types. Each constructor enforces SPEC's rules, so an
//! invalid username, email, password, content or room name cannot exist past
//! the edge of the system.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// Checks a length in characters against an inclusive range.
fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> DomainResult<()> {
    let len = value.chars().count();
    if len < min || len > max {
        let reason = if min == max {
            format!("must be exactly {min} characters")
        } else {
            format!("must be {min}-{max} characters")
        };
        return Err(DomainError::invalid(field, reason));
    }
    Ok(())
}

/// Refuses NUL characters in free text: PostgreSQL cannot store them in
/// `text`, and the memory store must agree with it.
fn check_no_nul(field: &'static str, value: &str) -> DomainResult<()> {
    if value.contains('\0') {
        return Err(DomainError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Gives back the validated text.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_value!(
    /// 3-32 characters of `A-Z a-z 0-9 _ . -`. Unique case-insensitively;
    /// the spelling given at registration is kept for display.
    Username
);

impl Username {
    /// Validates a username.
    pub fn parse(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        check_len("username", &raw, 3, 32)?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if !raw.chars().all(allowed) {
            return Err(DomainError::invalid(
                "username",
                "may only contain letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(raw))
    }

    /// Whether two usernames name the same account (case-insensitive).
    pub fn same_account(&self, other: &Username) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

string_value!(
    /// A syntactically valid email address (at most 254 characters). Unique
    /// case-insensitively.
    Email
);

impl Email {
    /// Validates an email address: one `@`, a non-empty local part, a
    /// dotted domain of letters, digits and hyphens, no whitespace.
    pub fn parse(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        let bad = || DomainError::invalid("email", "must be a valid email address");
        check_len("email", &raw, 3, 254).map_err(|_| bad())?;
        let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(raw))
        } else {
            Err(bad())
        }
    }
}

/// A plaintext password of 8-128 characters. Its `Debug` never shows it and
/// it cannot be serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates a password's length (the old service took 6; this one asks
    /// for 8).
    pub fn parse(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        check_len("password", &raw, 8, 128)?;
        Ok(Self(raw))
    }

    /// The secret itself, for the password hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in whatever format the hasher produces (bcrypt here).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored hash.
    pub fn new(hash: impl Into<String>) -> Self {
        Self(hash.into())
    }

    /// The encoded hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

string_value!(
    /// Message text: 1-4000 characters after trimming surrounding
    /// whitespace; the trimmed text is what is kept.
    MessageContent
);

impl MessageContent {
    /// Most characters a message may hold.
    pub const MAX_CHARS: usize = 4000;

    /// Trims and validates message text: `EmptyContent` unless it holds a
    /// visible character.
    pub fn parse(raw: impl AsRef<str>) -> DomainResult<Self> {
        let trimmed = raw.as_ref().trim();
        if !trimmed.chars().any(is_visible) {
            return Err(DomainError::EmptyContent);
        }
        check_len("content", trimmed, 1, Self::MAX_CHARS)?;
        check_no_nul("content", trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }
}

/// Whether `c` shows something on its own: not whitespace, not a control
/// character, and not one of the characters that render as nothing
/// (zero-width spaces and joiners, direction marks, fillers, variation
/// selectors, tags: Unicode's invisible format characters). `trim` only
/// removes whitespace, so a message of `"\u{200b}"` would look empty yet
/// be stored.
fn is_visible(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || is_invisible_format(c))
}

fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

string_value!(
    /// A reaction: one emoji, that is a single grapheme cluster of at most
    /// 32 bytes whose first character is an emoji or pictograph (flags,
    /// skin tones, keycaps and joined sequences included).
    Emoji
);

impl Emoji {
    /// Most bytes one reaction may take.
    pub const MAX_BYTES: usize = 32;

    /// Validates a reaction emoji (nothing is trimmed: it is a path
    /// segment, taken as given).
    pub fn parse(raw: impl Into<String>) -> DomainResult<Self> {
        use unicode_segmentation::UnicodeSegmentation;
        let raw = raw.into();
        let bad = || DomainError::invalid("emoji", "must be exactly one emoji");
        if raw.is_empty() || raw.len() > Self::MAX_BYTES || raw.graphemes(true).count() != 1 {
            return Err(bad());
        }
        let mut chars = raw.chars();
        let first = chars.next().ok_or_else(bad)?;
        let keycap = matches!(first, '0'..='9' | '#' | '*') && raw.contains('\u{20E3}');
        if keycap || is_pictographic(first) {
            Ok(Self(raw))
        } else {
            Err(bad())
        }
    }
}

/// Whether `c` starts an emoji: the pictographic blocks of Unicode and the
/// older symbols that emoji presentation turns into emoji.
fn is_pictographic(c: char) -> bool {
    matches!(
        c,
        '\u{00A9}'
            | '\u{00AE}'
            | '\u{203C}'
            | '\u{2049}'
            | '\u{2122}'
            | '\u{2139}'
            | '\u{2194}'..='\u{21AA}'
            | '\u{231A}'..='\u{23FF}'
            | '\u{24C2}'
            | '\u{25AA}'..='\u{25FE}'
            | '\u{2600}'..='\u{27BF}'
            | '\u{2934}'..='\u{2935}'
            | '\u{2B05}'..='\u{2B55}'
            | '\u{3030}'
            | '\u{303D}'
            | '\u{3297}'
            | '\u{3299}'
            | '\u{1F000}'..='\u{1FAFF}'
    )
}

string_value!(
    /// A room's name: 1-100 characters after trimming.
    RoomName
);

impl RoomName {
    /// Trims and validates a room name.
    pub fn parse(raw: impl AsRef<str>) -> DomainResult<Self> {
        let trimmed = raw.as_ref().trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid("name", "must not be empty"));
        }
        check_len("name", trimmed, 1, 100)?;
        check_no_nul("name", trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }
}

string_value!(
    /// A room's description: at most 1000 characters (may be empty).
    RoomDescription
);

impl RoomDescription {
    /// Trims and validates a room description.
    pub fn parse(raw: impl AsRef<str>) -> DomainResult<Self> {
        let trimmed = raw.as_ref().trim();
        check_len("description", trimmed, 0, 1000)?;
        check_no_nul("description", trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }
}

string_value!(
    /// A client-chosen idempotency key for a send: 1-64 visible ASCII
    /// characters. `(sender, client_id)` identifies one message.
    ClientId
);

impl ClientId {
    /// Validates a client id.
    pub fn parse(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        check_len("client_id", &raw, 1, 64)?;
        if !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(DomainError::invalid(
                "client_id",
                "may only contain visible ASCII characters",
            ));
        }
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_emoji_is_one_pictographic_grapheme() {
        for ok in ["👍", "❤️", "🇫🇷", "👍🏽", "👨‍👩‍👧", "1️⃣", "☕"]
        {
            assert!(Emoji::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "a", "👍👍", " 👍", "ok", "<script>", "1", "\u{200b}", "👍 ",
        ] {
            let err = Emoji::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "validation_error", "{bad:?}");
        }
        assert!(Emoji::parse("🏴󠁧󠁢󠁳󠁣󠁴󠁿".repeat(2)).is_err(), "too long");
    }
    use super::*;

    #[test]
    fn usernames_follow_the_spec() {
        assert!(Username::parse("bob").is_ok());
        assert!(Username::parse("a.b-c_d9").is_ok());
        assert!(Username::parse("x".repeat(32)).is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("x".repeat(33)).is_err());
        assert!(Username::parse("bob smith").is_err());
        assert!(Username::parse("böb").is_err());
        assert!(Username::parse("<script>").is_err());
    }

    #[test]
    fn same_account_ignores_case() {
        let a = Username::parse("Alice").expect("valid");
        let b = Username::parse("alice").expect("valid");
        assert!(a.same_account(&b));
    }

    #[test]
    fn emails_are_checked_for_syntax() {
        for good in ["a@b.co", "first.last+tag@example.org", "x_y@sub.domain.io"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.de",
            "a@@b.de",
            "a@-b.de",
            ".a@b.de",
            "a..b@c.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_8_to_128_characters_and_never_printed() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse("p".repeat(128)).is_ok());
        assert!(Password::parse("p".repeat(129)).is_err());
        let p = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn content_is_trimmed_then_checked() {
        assert_eq!(
            MessageContent::parse("  hi  ").expect("valid").as_str(),
            "hi"
        );
        assert_eq!(MessageContent::parse("   "), Err(DomainError::EmptyContent));
        assert!(MessageContent::parse("é".repeat(4000)).is_ok());
        assert!(MessageContent::parse("é".repeat(4001)).is_err());
    }

    #[test]
    fn content_without_a_visible_character_is_empty() {
        for invisible in [
            "",
            "\u{00a0}\u{200b}\u{3000}",
            "\u{200b}",
            "\u{200d}\u{2060}\u{feff}",
            "\u{202e}\u{2066}\u{00ad}",
            "\u{3164}\u{2800}\u{fe0f}",
            "\t\r\n\u{1}",
            "\u{e0041}\u{e0042}",
        ] {
            assert_eq!(
                MessageContent::parse(invisible),
                Err(DomainError::EmptyContent),
                "{invisible:?}"
            );
        }
        for visible in ["\u{200b}a\u{200b}", "👍", "\u{200d}x", "·", "\u{0301}"] {
            assert!(MessageContent::parse(visible).is_ok(), "{visible:?}");
        }
    }

    #[test]
    fn free_text_refuses_nul_characters() {
        let err = MessageContent::parse("a\0b").expect_err("NUL");
        assert_eq!(err.code(), "validation_error");
        assert!(err.to_string().contains("content"));
        assert!(RoomName::parse("a\0b").is_err());
        assert!(RoomDescription::parse("a\0b").is_err());
        assert!(MessageContent::parse("a\u{1}b").is_ok());
    }

    #[test]
    fn room_names_are_1_to_100_characters() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse(" ").is_err());
        assert!(RoomName::parse("r".repeat(101)).is_err());
    }

    #[test]
    fn deserializing_validates() {
        let err = serde_json::from_str::<Username>("\"a\"").expect_err("too short");
        assert!(err.to_string().contains("username"));
        let ok: Username = serde_json::from_str("\"alice\"").expect("valid");
        assert_eq!(ok.as_str(), "alice");
    }
}
