//! # chat-test-support
//!
//! Helpers shared by the tests of the chat service's crates:
//!
//! - [`builders`]: valid test data in one line ([`account`], [`room`],
//!   [`new_message`], ...), with timestamps cut to microseconds so values
//!   read back from PostgreSQL compare equal.
//! - [`contract`]: the store contract, one async function per rule of the
//!   store ports (`UserStore`, `RoomStore`, `MessageStore`,
//!   `RevocationStore`, `StoreHealth`). Every store adapter runs all of it
//!   with [`store_contract_tests!`], which makes each rule its own test.
//! - `pg` (feature `postgres`): a fresh database per test on the shared
//!   PostgreSQL server; `pg_server` (same feature): a private PostgreSQL
//!   server per test, for tests that kill and restart the database or
//!   need it to speak TLS; `tls` (same feature): a throwaway CA and the
//!   server certificates it signs.
//! - [`raw_ws`]: a WebSocket client on a bare TCP stream, for frames no
//!   client library sends (malformed close frames, huge frame headers).
//! - [`redis_server`]: a private `redis-server` per test, to kill,
//!   restart or pause under traffic.
//!
//! In an adapter's `tests/contract.rs` (the crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features as a dev-dependency):
//!
//! ```no_run
//! chat_test_support::store_contract_tests!(|| async {
//!     std::sync::Arc::new(chat_store_memory::MemoryStore::new())
//! });
//! # fn main() {}
//! ```
//!
//! A case can also be run by hand, on any store that implements
//! [`FullStore`]:
//!
//! ```
//! use std::sync::Arc;
//!
//! use chat_domain::UserStore;
//! use chat_store_memory::MemoryStore;
//! use chat_test_support::{account, contract};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(MemoryStore::new());
//! contract::usernames_are_unique_ignoring_case(store.clone()).await;
//! let bob = account("bob");
//! store.create_user(&bob).await.expect("bob is new");
//! # }
//! ```

pub mod builders;
pub mod contract;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "postgres")]
pub mod pg_server;
pub mod raw_ws;
pub mod redis_server;
#[cfg(feature = "postgres")]
pub mod tls;

pub use builders::{
    account, account_with_email, new_message, new_message_with_client_id, now, page, room,
    seed_user, to, username, DUMMY_PASSWORD_HASH,
};

use chat_domain::{MessageStore, ReadStore, RevocationStore, RoomStore, StoreHealth, UserStore};

/// Every store port at once: what the contract cases (and
/// `chat_domain::Stores::single`) need from a store adapter.
pub trait FullStore:
    UserStore + RoomStore + MessageStore + RevocationStore + ReadStore + StoreHealth + 'static
{
}

impl<T> FullStore for T where
    T: UserStore + RoomStore + MessageStore + RevocationStore + ReadStore + StoreHealth + 'static
{
}

/// Expands to one `#[tokio::test]` per case of [`contract`], each on a
/// fresh store from `factory`: an expression callable with no argument
/// that returns a future of `Arc<S>` where `S: FullStore`.
///
/// The tests run on a multi-threaded runtime so the concurrency cases
/// really race. The calling crate needs `tokio` (features `macros`,
/// `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr $(,)?) => {
        $crate::__store_contract_cases!(
            $factory;
            users_are_found_by_id,
            users_are_found_by_username_ignoring_case,
            unknown_users_are_not_found,
            usernames_are_unique_ignoring_case,
            emails_are_unique_ignoring_case,
            concurrent_registrations_of_one_name_admit_exactly_one,
            users_are_listed_in_id_order_and_paged,
            rooms_are_stored_with_their_members,
            unknown_rooms_are_not_found,
            adding_a_member_is_idempotent,
            removing_a_member_reports_whether_they_were_one,
            adding_to_an_unknown_room_or_an_unknown_user_fails,
            concurrent_joins_of_one_user_add_them_once,
            concurrent_joins_of_many_users_add_each_once,
            rooms_of_a_user_show_all_to_them_and_shared_ones_to_others,
            rooms_of_a_user_are_paged_in_id_order,
            messages_are_stored_and_found_by_id,
            a_resent_client_id_returns_the_original_and_stores_nothing,
            client_ids_belong_to_their_sender,
            concurrent_resends_store_exactly_one_message,
            visible_messages_are_global_own_direct_and_joined_rooms,
            visible_direct_messages_match_the_name_ignoring_case,
            room_messages_are_visible_only_while_a_member,
            direct_messages_are_those_between_the_pair,
            room_messages_are_those_of_the_room,
            message_pages_walk_each_history_exactly_once,
            a_forward_pager_sees_every_room_message_once_while_writers_race,
            a_forward_pager_sees_every_visible_message_once_while_writers_race,
            a_forward_pager_sees_every_direct_message_once_while_writers_race,
            reported_positions_follow_the_store_order,
            unknown_cursors_are_message_not_found,
            empty_lists_are_empty_pages,
            revoked_tokens_are_remembered_until_purged,
            revoking_twice_is_harmless,
            the_health_check_passes,
            an_edit_replaces_the_content_and_takes_a_new_position,
            a_deleted_message_is_a_tombstone_that_cannot_change,
            deleting_twice_changes_nothing_the_second_time,
            reactions_are_one_per_user_per_emoji_in_first_use_order,
            reactions_of_many_users_are_counted_exactly,
            replies_count_and_page_in_their_thread,
            a_reply_must_stay_in_its_parents_conversation,
            changes_after_a_position_are_new_and_changed_messages_in_order,
            changes_after_show_only_what_the_viewer_may_read,
            changes_after_page_without_gaps_or_repeats,
            changes_to_unknown_messages_are_not_found,
            a_new_user_has_read_the_global_history_so_far,
            own_messages_are_not_unread_and_move_the_marker,
            deleted_messages_are_not_unread,
            joining_a_room_starts_at_its_latest_message,
            a_new_direct_conversation_is_unread_for_the_recipient,
            in_a_direct_conversation_sending_reads_up_to_ones_own_message,
            markers_never_move_back,
            a_read_names_a_message_of_its_conversation,
            the_conversation_list_is_ordered_by_activity_and_paged,
            reads_are_in_the_stream_of_the_reader_and_the_other_party,
            concurrent_sends_and_resends_keep_counts_exact,
        );
    };
}

/// Implementation detail of [`store_contract_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = ($factory)().await;
                $crate::contract::$case(store).await;
            }
        )*
    };
}
