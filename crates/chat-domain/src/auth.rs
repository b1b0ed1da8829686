//! Tokens and sessions: what a JWT carries and what a login returns.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entities::User;
use crate::ids::{TokenId, UserId};
use crate::values::Username;

/// The claims of an access token (a JWT, HS256). `sub` and `user_id` both
/// hold the user's id: `sub` for JWT tooling, `user_id` for the old clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user's id.
    pub sub: String,
    /// The user's id.
    pub user_id: UserId,
    /// The user's name.
    pub username: Username,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not valid before (unix seconds); this service issues none, but a
    /// token that carries one is held to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// This token's id, which logout revokes.
    pub jti: TokenId,
}

/// Who is calling: the identity proven by a valid, unrevoked token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's id.
    pub user_id: UserId,
    /// The caller's name.
    pub username: Username,
    /// The id of the token the caller presented.
    pub token_id: TokenId,
    /// When that token expires.
    pub expires_at: OffsetDateTime,
}

/// A fresh token for a user, as login and refresh return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The signed JWT.
    pub token: String,
    /// The user it was issued to.
    pub user: User,
    /// When it expires (unix seconds).
    pub expires_at: i64,
}
