//! Storing messages: the messages of a batch (what the group-commit writer
//! takes off its queue) as one call of `messages_insert_batch` (`unnest.rs`):
//! one statement, committed on its own or with the batch's changes to
//! stored messages (`sink.rs`).
//!
//! Why ordering still holds: the function takes the ordering lock first
//! and draws `seq` row by row in the order given, that is queue order;
//! every row of the batch becomes visible at the one commit, before the
//! lock is released, so the next batch draws larger numbers only once this
//! one is readable. A batch is to readers what a single message was before.

use std::collections::{HashMap, HashSet};

use chat_domain::{DomainError, DomainResult, Message, NewMessage, Stored, UserAccount, Username};
use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::account_cache::AccountCache;
use crate::direct_pairs::{DirectPairs, NewPairs};
use crate::error::{check_violation, db_error, foreign_key_violation, pool_error};
use crate::rows::{MessageRow, NewMessageRow, UserRow};
use crate::schema::{messages, users};
use crate::sql::lower;
use crate::unnest::MessageBatch;

/// What storing one message did, and for a new message its position in
/// commit order (`seq`), which the service publishes in.
pub(crate) type Placed = (Stored, Option<u64>);

/// Stores `batch` on a connection of `pool`: one result per message, in
/// order. A pool that has no connection to give fails every message with
/// `StoreUnavailable`.
pub(crate) async fn write_on_pool(
    pool: &Pool<AsyncPgConnection>,
    accounts: &AccountCache,
    pairs: &DirectPairs,
    batch: &[NewMessage],
) -> Vec<DomainResult<Placed>> {
    match pool.get().await {
        Ok(mut conn) => write_batch(&mut conn, accounts, pairs, batch).await,
        Err(err) => vec![Err(pool_error(err)); batch.len()],
    }
}

/// One result per message of `batch`, in order, each message that a
/// failed statement left unwritten written on its own (one bad row, a room
/// deleted meanwhile, must not fail the others).
pub(crate) async fn write_batch(
    conn: &mut AsyncPgConnection,
    accounts: &AccountCache,
    pairs: &DirectPairs,
    batch: &[NewMessage],
) -> Vec<DomainResult<Placed>> {
    let failed = match try_write_batch(conn, accounts, pairs, batch).await {
        Ok((results, registered)) => {
            // One statement, committed on its own.
            pairs.remember(&registered);
            return results;
        }
        Err(err) => err,
    };
    pairs.forget();
    match failed {
        DomainError::StoreUnavailable => vec![Err(DomainError::StoreUnavailable); batch.len()],
        err => {
            tracing::warn!(error = %err, messages = batch.len(), "batch insert failed; writing its messages one by one");
            let mut results = Vec::with_capacity(batch.len());
            for new in batch {
                results.push(insert_one(conn, accounts, new).await);
            }
            results
        }
    }
}

/// One result per message of `batch`, in order, or the error of a
/// statement that failed (after which nothing of the batch is written, and
/// a transaction holding it is aborted). The first message of each
/// `(sender, client id)` is written; a later one in the same batch is a
/// resend of it and gets its message as a `Duplicate`, or its error.
/// With the results, the direct pairs it registered: whoever commits the
/// statement tells `pairs` to remember them, and whoever sees it fail, to
/// forget.
pub(crate) async fn try_write_batch(
    conn: &mut AsyncPgConnection,
    accounts: &AccountCache,
    pairs: &DirectPairs,
    batch: &[NewMessage],
) -> DomainResult<(Vec<DomainResult<Placed>>, NewPairs)> {
    let leader_of = leaders(batch);
    let leading: Vec<usize> = (0..batch.len()).filter(|&i| leader_of[i] == i).collect();
    let mut results: Vec<Option<DomainResult<Placed>>> = vec![None; batch.len()];
    let (written, registered) = write_distinct(conn, accounts, pairs, batch, &leading).await?;
    for (i, result) in written {
        results[i] = Some(result);
    }
    for i in (0..batch.len()).filter(|&i| leader_of[i] != i) {
        let result = match &results[leader_of[i]] {
            Some(Ok((stored, _))) => Ok((Stored::Duplicate(stored.message().clone()), None)),
            Some(Err(err)) => Err(err.clone()),
            None => Err(DomainError::internal("message not written")),
        };
        results[i] = Some(result);
    }
    let results = results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(DomainError::internal("message not written"))))
        .collect();
    Ok((results, registered))
}

/// For each message, the index of the first message of the batch with the
/// same sender and client id (itself when it is the first, or has no
/// client id).
pub(crate) fn leaders(batch: &[NewMessage]) -> Vec<usize> {
    let mut first: HashMap<(Uuid, &str), usize> = HashMap::new();
    batch
        .iter()
        .enumerate()
        .map(|(i, new)| match &new.client_id {
            Some(client_id) => *first
                .entry((new.sender_id.as_uuid(), client_id.as_str()))
                .or_insert(i),
            None => i,
        })
        .collect()
}

/// Writes the messages at `indices` (no two with the same sender and
/// client id) in one statement, registering the direct pairs `pairs` has
/// not: one result per message and the pairs registered, or the error of
/// a statement that failed.
async fn write_distinct(
    conn: &mut AsyncPgConnection,
    cache: &AccountCache,
    pairs: &DirectPairs,
    batch: &[NewMessage],
    indices: &[usize],
) -> DomainResult<(Vec<(usize, DomainResult<Placed>)>, NewPairs)> {
    let names: Vec<String> = indices
        .iter()
        .filter_map(|&i| batch[i].message.recipient())
        .map(|name| name.as_str().to_ascii_lowercase())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let accounts = recipients(conn, cache, names).await?;
    let mut results = Vec::with_capacity(indices.len());
    let mut rows = Vec::with_capacity(indices.len());
    let mut written = Vec::with_capacity(indices.len());
    for &i in indices {
        match row_for(&batch[i], &accounts) {
            Ok(row) => {
                rows.push(row);
                written.push(i);
            }
            Err(err) => results.push((i, Err(err))),
        }
    }
    if rows.is_empty() {
        return Ok((results, NewPairs::default()));
    }
    let registered = pairs.unregistered(
        rows.iter()
            .filter_map(|row| row.recipient_id.map(|to| (row.sender_id, to))),
    );
    let created = insert_rows(conn, &rows, &registered).await?;
    results.extend(sort_out(conn, batch, &written, created).await?);
    Ok((results, registered))
}

/// The row for `new`; a direct message takes its recipient's id and stored
/// spelling (which the composite foreign key requires) from `accounts`,
/// keyed by lowercase name. `UserNotFound` if the recipient is not there.
fn row_for<'a>(
    new: &'a NewMessage,
    accounts: &'a HashMap<String, (Uuid, String)>,
) -> DomainResult<NewMessageRow<'a>> {
    let recipient = match new.message.recipient() {
        Some(name) => Some(
            accounts
                .get(&name.as_str().to_ascii_lowercase())
                .ok_or(DomainError::UserNotFound)?,
        ),
        None => None,
    };
    let mut row = NewMessageRow::new(new, recipient.map(|(id, _)| *id));
    row.recipient = recipient.map(|(_, name)| name.as_str());
    Ok(row)
}

/// One insert of all `rows`, registering the direct pairs `register`
/// first: the rows that were new come back; a row whose
/// sender already used its client id (committed by an earlier batch or
/// another instance) is left out. Two rows with the same sender and client
/// id fail the statement (`leaders` keeps them apart). One statement of
/// fixed text for any number of rows, kept prepared: one round trip.
async fn insert_rows(
    conn: &mut AsyncPgConnection,
    rows: &[NewMessageRow<'_>],
    register: &NewPairs,
) -> DomainResult<Vec<MessageRow>> {
    MessageBatch::new(rows, register)
        .load(conn)
        .await
        .map_err(message_error)
}

/// Matches the returned rows to the messages at `written`: returned ones
/// were created; the others are resends, answered with their originals.
async fn sort_out(
    conn: &mut AsyncPgConnection,
    batch: &[NewMessage],
    written: &[usize],
    created: Vec<MessageRow>,
) -> DomainResult<Vec<(usize, DomainResult<Placed>)>> {
    let mut created: HashMap<Uuid, MessageRow> =
        created.into_iter().map(|row| (row.id, row)).collect();
    let mut results = Vec::with_capacity(written.len());
    let mut resent = Vec::new();
    for &i in written {
        match created.remove(&batch[i].message.id.as_uuid()) {
            Some(row) => results.push((i, placed_new(row))),
            None => resent.push(i),
        }
    }
    if resent.is_empty() {
        return Ok(results);
    }
    let mut found = originals(conn, batch, &resent).await?;
    results.extend(resent.iter().map(|&i| {
        let original = key_of(&batch[i])
            .and_then(|key| found.remove(&key))
            .ok_or_else(|| DomainError::internal("a skipped message has no original"));
        (i, original.and_then(duplicate))
    }));
    Ok(results)
}

/// The idempotency key of a message, if it has one.
fn key_of(new: &NewMessage) -> Option<(Uuid, String)> {
    let client_id = new.client_id.as_ref()?;
    Some((new.sender_id.as_uuid(), client_id.as_str().to_owned()))
}

/// The stored messages of the resends at `indices`, by `(sender, client
/// id)`: one query, each pair an `OR`ed branch of the unique index.
async fn originals(
    conn: &mut AsyncPgConnection,
    batch: &[NewMessage],
    indices: &[usize],
) -> DomainResult<HashMap<(Uuid, String), MessageRow>> {
    let mut query = messages::table
        .select((
            messages::sender_id,
            messages::client_id,
            MessageRow::as_select(),
        ))
        .into_boxed();
    for (sender, client_id) in indices.iter().filter_map(|&i| key_of(&batch[i])) {
        query = query.or_filter(
            messages::sender_id
                .eq(sender)
                .and(messages::client_id.eq(client_id)),
        );
    }
    let rows: Vec<(Uuid, Option<String>, MessageRow)> = query.load(conn).await.map_err(db_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(sender, client_id, row)| Some(((sender, client_id?), row)))
        .collect())
}

/// Ids and stored spellings of the accounts with these lowercase names,
/// keyed by lowercase name: from `cache`, and the others in one look-up on
/// the `lower(username)` index (then kept in `cache`).
async fn recipients(
    conn: &mut AsyncPgConnection,
    cache: &AccountCache,
    names: Vec<String>,
) -> DomainResult<HashMap<String, (Uuid, String)>> {
    let mut found = HashMap::with_capacity(names.len());
    let mut missing = Vec::new();
    for name in names {
        match cache.get(&name) {
            Some(account) => {
                let spelling = account.username.as_str().to_owned();
                found.insert(name, (account.id.as_uuid(), spelling));
            }
            None => missing.push(name),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let rows: Vec<UserRow> = users::table
        .filter(lower(users::username).eq_any(missing))
        .select(UserRow::as_select())
        .load(conn)
        .await
        .map_err(db_error)?;
    for row in rows {
        let account = UserAccount::try_from(row)?;
        cache.put(&account);
        let spelling = account.username.as_str().to_owned();
        let key = spelling.to_ascii_lowercase();
        found.insert(key, (account.id.as_uuid(), spelling));
    }
    Ok(found)
}

/// Stores one message in a statement of its own: the fallback when a batch
/// fails, and for a resend whose first copy in the batch failed. A direct
/// message registers its pair whatever the cache says: rare, and right
/// after a failure.
async fn insert_one(
    conn: &mut AsyncPgConnection,
    cache: &AccountCache,
    new: &NewMessage,
) -> DomainResult<Placed> {
    let recipient = match new.message.recipient() {
        Some(name) => Some(account_named(conn, cache, name).await?),
        None => None,
    };
    let mut row = NewMessageRow::new(new, recipient.as_ref().map(|(id, _)| *id));
    row.recipient = recipient.as_ref().map(|(_, name)| name.as_str());
    let register = match row.recipient_id {
        Some(to) => NewPairs {
            a: vec![row.sender_id],
            b: vec![to],
        },
        None => NewPairs::default(),
    };
    let mut created = insert_rows(conn, std::slice::from_ref(&row), &register).await?;
    if let Some(row) = created.pop() {
        return placed_new(row);
    }
    let mut found = originals(conn, std::slice::from_ref(new), &[0]).await?;
    key_of(new)
        .and_then(|key| found.remove(&key))
        .ok_or_else(|| DomainError::internal("a skipped message has no original"))
        .and_then(duplicate)
}

/// A new message, with its position.
fn placed_new(row: MessageRow) -> DomainResult<Placed> {
    let position = u64::try_from(row.seq).ok();
    Ok((Stored::Created(Message::try_from(row)?), position))
}

/// The original of a resend (no position: nothing new to publish).
fn duplicate(row: MessageRow) -> DomainResult<Placed> {
    Ok((Stored::Duplicate(Message::try_from(row)?), None))
}

/// The id and stored spelling of the account named `name`
/// (case-insensitively); `UserNotFound` if there is none.
async fn account_named(
    conn: &mut AsyncPgConnection,
    cache: &AccountCache,
    name: &Username,
) -> DomainResult<(Uuid, String)> {
    let lowercase = name.as_str().to_ascii_lowercase();
    recipients(conn, cache, vec![lowercase.clone()])
        .await?
        .remove(&lowercase)
        .ok_or(DomainError::UserNotFound)
}

/// A message naming a sender, recipient or room that does not exist.
fn message_error(err: diesel::result::Error) -> DomainError {
    if check_violation(&err) == Some("messages_reply_same_conversation") {
        return DomainError::BadReplyTo;
    }
    match foreign_key_violation(&err) {
        Some("messages_reply_to_fkey") => DomainError::BadReplyTo,
        Some("messages_room_id_fkey") => DomainError::RoomNotFound,
        Some("messages_sender_fkey" | "messages_recipient_fkey") => DomainError::UserNotFound,
        _ => db_error(err),
    }
}

#[cfg(test)]
mod tests {
    use chat_domain::{ClientId, MessageContent, MessageId, MessageTarget, UserId};
    use time::OffsetDateTime;

    use super::*;

    fn message(sender: UserId, client_id: Option<&str>) -> NewMessage {
        NewMessage {
            message: Message::new(
                MessageId::generate(),
                Username::parse("alice").expect("valid name"),
                MessageTarget::Global,
                MessageContent::parse("hi").expect("valid content"),
                OffsetDateTime::now_utc(),
            ),
            sender_id: sender,
            client_id: client_id.map(|id| ClientId::parse(id.to_owned()).expect("valid id")),
        }
    }

    #[test]
    fn a_resend_in_the_same_batch_follows_the_first_copy() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let batch = [
            message(alice, Some("a")),
            message(alice, None),
            message(bob, Some("a")),
            message(alice, Some("a")),
            message(alice, None),
            message(bob, Some("b")),
            message(bob, Some("a")),
        ];
        assert_eq!(leaders(&batch), vec![0, 1, 2, 0, 4, 5, 2]);
    }

    #[test]
    fn messages_without_client_ids_are_never_merged() {
        let alice = UserId::generate();
        let batch = [message(alice, None), message(alice, None)];
        assert_eq!(leaders(&batch), vec![0, 1]);
    }
}
