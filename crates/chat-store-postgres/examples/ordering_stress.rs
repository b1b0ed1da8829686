//! Ordering stress (gap-free history), on PostgreSQL.
//!
//! `--writers` tasks store `--messages` messages each into one room, one
//! after the other, while a forward pager reads the room with `after=`
//! (`--page` per page) and `--readers` reconnecting clients follow their
//! visible feed: each reads a few pages, disconnects for a few
//! milliseconds, and resumes after the last message it saw, as a WebSocket
//! client reconnecting with `?since=` does. When the writers are done, every
//! reader must have seen every message exactly once, in the order of a
//! final full read. Prints the skipped / repeated / out-of-order counts and
//! the insert throughput.
//!
//! ```sh
//! cargo run --release -p chat-store-postgres --example ordering_stress -- \
//!     --writers 8 --messages 5000 --readers 10
//! # The same with the ordering lock taken out of the insert trigger (on
//! # this run's own throw-away database), to measure what the lock costs
//! # and to show what it prevents:
//! cargo run --release -p chat-store-postgres --example ordering_stress -- \
//!     --writers 8 --messages 5000 --readers 10 --unordered
//! ```
//!
//! The database is a fresh copy of the migrated test template on
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped at the end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_domain::{
    Cursor, Message, MessageId, MessageStore, MessageTarget, PageRequest, RoomStore, Stored,
    UserAccount,
};
use chat_store_postgres::PgStore;
use chat_test_support::pg::TestDatabase;
use chat_test_support::{new_message, page, room, seed_user};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// The trigger function without the ordering lock: seq is still drawn from
/// the sequence, but in insert order rather than commit order.
const UNORDERED_TRIGGER: &str = "CREATE OR REPLACE FUNCTION messages_assign_seq() \
    RETURNS trigger LANGUAGE plpgsql AS $$ \
    BEGIN NEW.seq := nextval('messages_seq_seq'); RETURN NEW; END $$";

#[derive(Clone, Copy, Debug)]
struct Options {
    writers: usize,
    messages: usize,
    readers: usize,
    page: usize,
    unordered: bool,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            writers: 8,
            messages: 5_000,
            readers: 10,
            page: 50,
            unordered: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--unordered" {
                options.unordered = true;
                continue;
            }
            let value: usize = args
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{flag} needs a number")));
            match flag.as_str() {
                "--writers" => options.writers = value.max(1),
                "--messages" => options.messages = value.max(1),
                "--readers" => options.readers = value,
                "--page" => options.page = value.clamp(1, PageRequest::<MessageId>::MAX_LIMIT),
                _ => usage(&format!("unknown option {flag}")),
            }
        }
        options
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: ordering_stress [--writers N] [--messages N] [--readers N] \
         [--page N] [--unordered]"
    );
    std::process::exit(2)
}

/// What one reader saw.
struct Reading {
    name: String,
    seen: Vec<MessageId>,
    pages: usize,
    reconnects: usize,
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let db = TestDatabase::create().await;
    if options.unordered {
        drop_ordering_lock(&db.url).await;
    }
    let pool_size = options.writers + options.readers + 2;
    let store = Arc::new(
        PgStore::connect(&db.url, pool_size)
            .await
            .expect("opens the store"),
    );
    let (writers, readers, room_id, start) = setup(&store, &options).await;

    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut writing = tokio::task::JoinSet::new();
    for (w, writer) in writers.into_iter().enumerate() {
        let (store, finished) = (store.clone(), finished.clone());
        writing.spawn(async move {
            let written = write(&store, &writer, w, room_id, options.messages).await;
            finished.fetch_add(1, Ordering::SeqCst);
            (written, started.elapsed())
        });
    }
    let mut reading = tokio::task::JoinSet::new();
    let pager = Follower {
        store: store.clone(),
        finished: finished.clone(),
        writers: options.writers,
        page: options.page,
    };
    {
        let pager = pager.clone();
        reading.spawn(async move { pager.follow_room(room_id, start).await });
    }
    for (r, reader) in readers.into_iter().enumerate() {
        let pager = pager.clone();
        let seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(r as u64 + 1);
        reading.spawn(async move { pager.follow_feed(reader, start, seed).await });
    }

    let mut expected = HashSet::new();
    let mut latencies = Vec::new();
    let mut writing_time = Duration::ZERO;
    while let Some(joined) = writing.join_next().await {
        let ((ids, times), done_at) = joined.expect("writer ran");
        expected.extend(ids);
        latencies.extend(times);
        writing_time = writing_time.max(done_at);
    }
    let mut readings = Vec::new();
    while let Some(joined) = reading.join_next().await {
        readings.push(joined.expect("reader ran"));
    }
    readings.sort_by(|a, b| a.name.cmp(&b.name));
    let order = final_order(&store, room_id, start).await;
    report(
        &options,
        &expected,
        &order,
        &readings,
        writing_time,
        latencies,
    );
}

/// Replaces the insert trigger's function with [`UNORDERED_TRIGGER`].
async fn drop_ordering_lock(url: &str) {
    // Scoped here: its `load` would shadow `AtomicUsize::load` elsewhere.
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .expect("connects to the throw-away database");
    diesel::sql_query(UNORDERED_TRIGGER)
        .execute(&mut conn)
        .await
        .expect("replaces the trigger function");
}

/// Writers and readers as members of one room, and a first message in it.
async fn setup(
    store: &PgStore,
    options: &Options,
) -> (
    Vec<UserAccount>,
    Vec<UserAccount>,
    chat_domain::RoomId,
    MessageId,
) {
    let mut writers = Vec::new();
    for w in 0..options.writers {
        writers.push(seed_user(store, &format!("writer{w}")).await);
    }
    let mut readers = Vec::new();
    for r in 0..options.readers {
        readers.push(seed_user(store, &format!("reader{r}")).await);
    }
    let founder = seed_user(store, "founder").await;
    let members: Vec<_> = writers.iter().chain(&readers).map(|u| u.id).collect();
    let stress = room("stress", founder.id, &members);
    store.create_room(&stress).await.expect("room stored");
    let first = new_message(&founder, MessageTarget::Room(stress.id), "start");
    let start = store.insert_message(&first).await.expect("stored");
    (writers, readers, stress.id, start.message().id)
}

/// Stores `count` messages from `writer`, one after the other; returns their
/// ids and how long each insert took.
async fn write(
    store: &PgStore,
    writer: &UserAccount,
    w: usize,
    room: chat_domain::RoomId,
    count: usize,
) -> (Vec<MessageId>, Vec<Duration>) {
    let mut ids = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    for n in 0..count {
        let new = new_message(writer, MessageTarget::Room(room), &format!("w{w} m{n}"));
        let began = Instant::now();
        match store.insert_message(&new).await.expect("insert succeeds") {
            Stored::Created(m) => ids.push(m.id),
            Stored::Duplicate(_) => panic!("no client id, no duplicate"),
        }
        times.push(began.elapsed());
    }
    (ids, times)
}

/// A reader following a list forward until the writers are done.
#[derive(Clone)]
struct Follower {
    store: Arc<PgStore>,
    finished: Arc<AtomicUsize>,
    writers: usize,
    page: usize,
}

impl Follower {
    /// The forward pager on the room, never disconnecting.
    async fn follow_room(self, room: chat_domain::RoomId, start: MessageId) -> Reading {
        let mut reading = Reading {
            name: "room pager".to_owned(),
            seen: Vec::new(),
            pages: 0,
            reconnects: 0,
        };
        let mut cursor = start;
        loop {
            let done = self.finished.load(Ordering::SeqCst) == self.writers;
            let got = self
                .store
                .room_messages(room, page(self.page, Cursor::After(cursor)))
                .await
                .expect("page reads");
            reading.pages += 1;
            if !self.take(&mut reading, &mut cursor, &got.items, done).await {
                return reading;
            }
        }
    }

    /// A client following its visible feed that disconnects now and then
    /// and resumes after the last message it saw.
    async fn follow_feed(self, reader: UserAccount, start: MessageId, mut seed: u64) -> Reading {
        let mut reading = Reading {
            name: reader.username.to_string(),
            seen: Vec::new(),
            pages: 0,
            reconnects: 0,
        };
        let mut cursor = start;
        let mut pages_left = 1 + next_random(&mut seed) % 5;
        loop {
            if pages_left == 0 {
                reading.reconnects += 1;
                let gap = next_random(&mut seed) % 20;
                tokio::time::sleep(Duration::from_millis(gap)).await;
                pages_left = 1 + next_random(&mut seed) % 5;
            }
            pages_left -= 1;
            let done = self.finished.load(Ordering::SeqCst) == self.writers;
            let got = self
                .store
                .visible_messages(
                    reader.id,
                    &reader.username,
                    page(self.page, Cursor::After(cursor)),
                )
                .await
                .expect("page reads");
            reading.pages += 1;
            if !self.take(&mut reading, &mut cursor, &got.items, done).await {
                return reading;
            }
        }
    }

    /// Records a page; `false` once an empty page was read after every
    /// writer had finished (nothing more can come).
    async fn take(
        &self,
        reading: &mut Reading,
        cursor: &mut MessageId,
        items: &[Message],
        writers_done: bool,
    ) -> bool {
        match items.last() {
            Some(last) => {
                *cursor = last.id;
                reading.seen.extend(items.iter().map(|m| m.id));
                true
            }
            None if writers_done => false,
            None => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                true
            }
        }
    }
}

/// xorshift64: reconnect timing only needs to vary, not to be good.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The room's whole history after `start`, walking back from the newest
/// page.
async fn final_order(
    store: &PgStore,
    room: chat_domain::RoomId,
    start: MessageId,
) -> Vec<MessageId> {
    let mut pages = Vec::new();
    let mut cursor = Cursor::Latest;
    loop {
        let got = store
            .room_messages(room, page(PageRequest::<MessageId>::MAX_LIMIT, cursor))
            .await
            .expect("page reads");
        let ids: Vec<MessageId> = got.items.iter().map(|m| m.id).collect();
        let Some(&first) = ids.first() else { break };
        pages.push(ids);
        if !got.has_older {
            break;
        }
        cursor = Cursor::Before(first);
    }
    pages
        .into_iter()
        .rev()
        .flatten()
        .filter(|&id| id != start)
        .collect()
}

/// How many times a reader got a message that the final read places
/// before the one it got just before.
fn inversions(seen: &[MessageId], position: &HashMap<MessageId, usize>) -> usize {
    let places: Vec<usize> = seen
        .iter()
        .filter_map(|id| position.get(id).copied())
        .collect();
    places.windows(2).filter(|w| w[1] < w[0]).count()
}

fn report(
    options: &Options,
    expected: &HashSet<MessageId>,
    order: &[MessageId],
    readings: &[Reading],
    writing_time: Duration,
    mut latencies: Vec<Duration>,
) {
    let total = expected.len();
    latencies.sort();
    let percentile = |p: usize| {
        let i = (latencies.len() * p / 100).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = total as f64 / writing_time.as_secs_f64();
    println!(
        "ordering lock: {}; {} writers x {} messages into one room; {} reconnecting readers; page {}",
        if options.unordered { "OFF" } else { "on" },
        options.writers,
        options.messages,
        options.readers,
        options.page
    );
    println!(
        "stored {total} messages in {:.2} s: {rate:.0} messages/s; insert latency p50 {:.2} ms, p99 {:.2} ms",
        writing_time.as_secs_f64(),
        percentile(50),
        percentile(99),
    );
    println!("final read: {} messages", order.len());
    let position: HashMap<MessageId, usize> =
        order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    println!("| reader | pages | reconnects | seen | skipped | repeated | out of order |");
    println!("|---|---|---|---|---|---|---|");
    let mut faults = 0;
    for reading in readings {
        let unique: HashSet<MessageId> = reading.seen.iter().copied().collect();
        let skipped = expected.difference(&unique).count();
        let repeated = reading.seen.len() - unique.len();
        let out_of_order = inversions(&reading.seen, &position);
        faults += skipped + repeated + out_of_order;
        println!(
            "| {} | {} | {} | {} | {skipped} | {repeated} | {out_of_order} |",
            reading.name,
            reading.pages,
            reading.reconnects,
            reading.seen.len()
        );
    }
    if faults == 0 {
        println!("OK: every reader saw every message exactly once, in the store's order");
    } else {
        println!("FAULTS: {faults} (skipped + repeated + out of order, summed over readers)");
        std::process::exit(1);
    }
}
