//! # chat-auth
//!
//! The authentication adapters of the chat service, implementing two ports
//! of `chat-domain`:
//!
//! - [`JwtCodec`] is a [`TokenCodec`](chat_domain::TokenCodec): it signs
//!   [`Claims`](chat_domain::Claims) as HS256 JWTs and accepts nothing but
//!   HS256 back (`none`, HS384, RS256 ... are all `Unauthenticated`).
//! - [`BcryptHasher`] is a [`PasswordHasher`](chat_domain::PasswordHasher):
//!   bcrypt over a SHA-256 pre-hash, run on tokio's blocking pool.
//!
//! ```
//! use chat_auth::{BcryptHasher, JwtCodec};
//! use chat_domain::{Claims, Password, PasswordHasher, TokenCodec, TokenId, UserId, Username};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chat_domain::DomainError> {
//! // Tokens: encode, then decode with the same secret.
//! let codec = JwtCodec::new(b"a secret of at least thirty-two bytes!");
//! let user_id = UserId::generate();
//! let claims = Claims {
//!     sub: user_id.to_string(),
//!     user_id,
//!     username: Username::parse("alice")?,
//!     iat: 1_700_000_000,
//!     nbf: None,
//!     exp: 1_700_086_400,
//!     jti: TokenId::generate(),
//! };
//! let token = codec.encode(&claims)?;
//! assert_eq!(codec.decode(&token)?, claims);
//! assert!(codec.decode("not.a.token").is_err());
//!
//! // Passwords: cost 4 is for tests; production uses BCRYPT_COST (12).
//! let hasher = BcryptHasher::new(4)?;
//! let password = Password::parse("correct horse battery")?;
//! let hash = hasher.hash(&password).await?;
//! assert!(hasher.verify(&password, &hash).await?);
//! assert!(!hasher.verify(&password, &hasher.decoy_hash()).await?);
//! # Ok(())
//! # }
//! ```

mod hasher;
mod jwt;

pub use hasher::BcryptHasher;
pub use jwt::JwtCodec;
