//! Identifiers. All are UUIDs; message, user and room ids are version 7
//! (time-ordered). Users and rooms are paged by id; messages are paged in
//! the store's commit order, with ids as cursors (see
//! [`MessageStore`](crate::MessageStore)).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (for adapters reading stored ids).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    DomainError::invalid($what, "must be a UUID")
                })
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId, "user_id"
);
id_type!(
    /// Identifies a room.
    RoomId, "room_id"
);
id_type!(
    /// Identifies a message. Ids are time-ordered (to the millisecond, then
    /// random) but histories are not sorted by them: two writers can store
    /// messages out of id order, and lists follow the store's order.
    MessageId, "message_id"
);
id_type!(
    /// Identifies one issued token (the JWT `jti` claim), so it can be revoked.
    TokenId, "jti"
);
