//! The one error type of the domain. Adapters turn their driver errors into
//! it at their seam; the HTTP adapter maps each variant to a status in one
//! place. Every variant has a stable snake_case [`DomainError::code`].

use thiserror::Error;

/// Everything a use case can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Input failed validation; `field` names the offending input.
    #[error("{field} {reason}")]
    Validation {
        /// Which input was wrong (`username`, `content`, ...).
        field: &'static str,
        /// Why, as the end of a sentence ("must be 3-32 characters").
        reason: String,
    },
    /// Message content with no visible character: empty, or only
    /// whitespace, zero-width or other invisible characters.
    #[error("content must hold a visible character")]
    EmptyContent,
    /// Registration with a username someone already has (case-insensitive).
    #[error("username is already taken")]
    UsernameTaken,
    /// Registration with an email someone already has (case-insensitive).
    #[error("email is already registered")]
    EmailTaken,
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No token, a malformed, forged or expired one.
    #[error("authentication required: missing, invalid or expired token")]
    Unauthenticated,
    /// The token was revoked by logout.
    #[error("token has been revoked")]
    TokenRevoked,
    /// A correctly signed token whose account does not exist (any more)
    /// with that id and that username, e.g. one issued before the database
    /// was reset.
    #[error("token does not belong to an existing account")]
    InvalidToken,
    /// Refresh asked for more than the refresh window before expiry.
    #[error("token can only be refreshed within 15 minutes of its expiry")]
    NotEligibleForRefresh,
    /// A message body named a sender other than the caller.
    #[error("sender must be the authenticated user")]
    SenderMismatch,
    /// The caller is not a member of the room.
    #[error("you are not a member of this room")]
    NotAMember,
    /// The caller may not do this (e.g. read someone else's direct messages).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The named user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The named room does not exist.
    #[error("room not found")]
    RoomNotFound,
    /// The named message does not exist or is not visible to the caller.
    #[error("message not found")]
    MessageNotFound,
    /// Only a message's sender may do this to it (edit it).
    #[error("only the sender of a message may edit it")]
    NotSender,
    /// The message was deleted: it cannot be edited, reacted to or
    /// replied to.
    #[error("the message was deleted")]
    MessageDeleted,
    /// `reply_to` names no visible, not deleted message of the same
    /// conversation.
    #[error("reply_to must name a message of the same conversation that you can read and that is not deleted")]
    BadReplyTo,
    /// Too many attempts; retry after the given number of seconds.
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// A connection asked to follow more users' presence than it may.
    #[error("a connection follows the presence of at most {limit} users")]
    TooManySubscriptions {
        /// How many users one connection may follow.
        limit: usize,
    },
    /// A user asked for more live connections on this instance than they
    /// may hold.
    #[error("a user holds at most {limit} live connections: close one first")]
    TooManyConnections {
        /// How many connections one user may hold.
        limit: usize,
    },
    /// The server is shutting down: no new live connection is taken.
    #[error("the server is shutting down, reconnect shortly")]
    ShuttingDown,
    /// The store cannot be reached right now.
    #[error("the message store is unavailable, try again shortly")]
    StoreUnavailable,
    /// A bug or an unexpected failure; the detail is for logs, not clients.
    #[error("internal error")]
    Internal(String),
}

impl DomainError {
    /// A validation error for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Validation {
            field,
            reason: reason.into(),
        }
    }

    /// An internal error carrying a detail for the logs.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The stable machine-readable code sent to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_error",
            Self::EmptyContent => "empty_content",
            Self::UsernameTaken => "username_taken",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Unauthenticated => "unauthorized",
            Self::TokenRevoked => "token_revoked",
            Self::InvalidToken => "invalid_token",
            Self::NotEligibleForRefresh => "not_eligible_for_refresh",
            Self::SenderMismatch => "sender_mismatch",
            Self::NotAMember => "not_a_member",
            Self::Forbidden(_) => "forbidden",
            Self::UserNotFound => "user_not_found",
            Self::RoomNotFound => "room_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::NotSender => "not_sender",
            Self::MessageDeleted => "message_deleted",
            Self::BadReplyTo => "bad_reply_to",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManySubscriptions { .. } => "too_many_subscriptions",
            Self::TooManyConnections { .. } => "too_many_connections",
            Self::ShuttingDown => "shutting_down",
            Self::StoreUnavailable => "store_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// Shorthand for results of domain operations.
pub type DomainResult<T> = Result<T, DomainError>;
