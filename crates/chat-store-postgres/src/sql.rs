//! SQL functions the query builder does not ship, declared so queries stay
//! typed (no SQL strings).

use diesel::define_sql_function;
use diesel::sql_types::{BigInt, Nullable, Text, Uuid};

define_sql_function! {
    /// `lower(text)`: case-insensitive lookups, matching the unique
    /// `lower(username)` / `lower(email)` indexes.
    fn lower(x: Text) -> Text;
}

define_sql_function! {
    /// Takes a session-level advisory lock, waiting for it. Returns `void`
    /// in SQL; only ever executed, never loaded.
    fn pg_advisory_lock(key: BigInt) -> Nullable<Text>;
}

define_sql_function! {
    /// Releases a session-level advisory lock.
    fn pg_advisory_unlock(key: BigInt) -> diesel::sql_types::Bool;
}

define_sql_function! {
    /// `greatest(a, b)` of two timestamps.
    #[sql_name = "greatest"]
    fn greatest_time(
        a: diesel::sql_types::Timestamptz,
        b: diesel::sql_types::Timestamptz
    ) -> diesel::sql_types::Timestamptz;
}

define_sql_function! {
    /// An edit (see the `change_functions` migration): its position, or
    /// NULL when the message is unknown or deleted.
    fn message_edit(
        message: Uuid,
        new_content: Text,
        at: diesel::sql_types::Timestamptz
    ) -> Nullable<BigInt>;
}

define_sql_function! {
    /// A deletion, with the message's reactions: its position, or NULL.
    fn message_delete(message: Uuid, at: diesel::sql_types::Timestamptz) -> Nullable<BigInt>;
}

define_sql_function! {
    /// A reaction added (`adding`) or taken back: its position, or NULL
    /// when it changed nothing.
    fn message_react(
        message: Uuid,
        reactor: Uuid,
        reaction: Text,
        adding: diesel::sql_types::Bool
    ) -> Nullable<BigInt>;
}

define_sql_function! {
    /// A conversation's key (see the `read_state` migration).
    fn conversation_key(recipient: Nullable<Uuid>, sender: Uuid, room: Nullable<Uuid>) -> Uuid;
}

define_sql_function! {
    /// A read's move of a marker (see the `read_state` and
    /// `direct_own_places` migrations): its position, NULL when nothing
    /// moved, -1 when the message is not in the conversation.
    fn read_markers_move(
        reader: Uuid,
        key: Uuid,
        message: Uuid,
        peer: Nullable<Uuid>,
        room: Nullable<Uuid>
    ) -> Nullable<BigInt>;
}
