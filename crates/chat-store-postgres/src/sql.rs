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
    /// `least(a, b)`: the smaller id of a direct-message pair, matching the
    /// `messages_direct_pair_id_idx` expression index.
    fn least(a: Nullable<Uuid>, b: Nullable<Uuid>) -> Nullable<Uuid>;
}

define_sql_function! {
    /// `greatest(a, b)`: the larger id of a direct-message pair.
    fn greatest(a: Nullable<Uuid>, b: Nullable<Uuid>) -> Nullable<Uuid>;
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
