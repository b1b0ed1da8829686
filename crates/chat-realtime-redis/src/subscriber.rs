//! The subscriber task: listens on the events channel on its own
//! connection (a subscribed connection can do nothing else) and hands
//! every envelope not published by this instance to the local hub. When
//! the connection ends, stops answering, or the writer finds Redis lost,
//! it subscribes again, with backoff.
//!
//! **Holes.** Redis does not replay what was published while a subscriber
//! was away. So a break of the subscription opens a hole in the hub
//! ([`Hub::open_hole`], from the stream's last sign of life), and the
//! next subscription closes it ([`Hub::close_hole`]) before it delivers
//! anything: every local connection is handed `Delivery::Gap` and fills
//! the hole from the store. A loss report of another instance (it could
//! not publish for a while) is a hole too. Presence changes the hole
//! swallowed are told again from what Redis holds once it is back.
//!
//! **Liveness.** A paused or partitioned Redis leaves the connection
//! open and silent: every `heartbeat` the subscriber subscribes again to
//! the channel it has (a no-op that Redis answers on the same
//! connection), and takes a reply missing for `io_timeout` as a break.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use redis::{Msg, RedisError};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};

use crate::envelope::{self, Body};
use crate::options::Backoff;
use crate::shared::Shared;

/// Runs until aborted. `started` is answered after the first attempt.
pub(crate) async fn run(shared: Arc<Shared>, started: oneshot::Sender<()>) {
    let mut started = Some(started);
    let mut backoff = Backoff::new(shared.options.max_backoff);
    let mut failing = false;
    // The last sign of life of the stream before it broke.
    let mut broken_since: Option<Instant> = None;
    loop {
        match subscribe(&shared).await {
            Ok(pubsub) => {
                if failing {
                    tracing::info!("subscribed to Redis again: receiving other instances' events");
                }
                failing = false;
                backoff.reset();
                shared.health.set_subscribed(true);
                answer(&mut started);
                let (sink, messages) = pubsub.split();
                mend(&shared, broken_since.take()).await;
                let alive = listen(&shared, sink, messages).await;
                broken_since = Some(alive);
                shared.hub.open_hole(alive);
                shared.health.set_subscribed(false);
                shared.check_link.notify_one();
                metrics::counter!("chat_redis_subscription_breaks_total").increment(1);
                tracing::warn!("lost the Redis subscription: other instances' events are missed until it is back, then filled in from the store");
            }
            Err(error) => {
                if failing {
                    tracing::debug!(%error, "still cannot subscribe to Redis");
                } else {
                    tracing::warn!(%error, "cannot subscribe to Redis: retrying with backoff");
                    // Not subscribed from the start: connections opened
                    // meanwhile miss other instances' events.
                    let now = Instant::now();
                    broken_since.get_or_insert(now);
                    shared.hub.open_hole(now);
                }
                failing = true;
                answer(&mut started);
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn answer(started: &mut Option<oneshot::Sender<()>>) {
    if let Some(started) = started.take() {
        let _ = started.send(());
    }
}

async fn subscribe(shared: &Shared) -> Result<PubSub, RedisError> {
    let timeout = shared.options.io_timeout;
    let attempt = async {
        let mut pubsub = shared.client.get_async_pubsub().await?;
        pubsub.subscribe(&shared.channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing timed out",
            )))
        })
}

/// Subscribed again after a hole: hands every local connection the hole
/// to fill, ahead of anything received on the new subscription, and
/// tells followed users' presence again (a change the hole swallowed is
/// otherwise never told). What arrives meanwhile waits on the
/// subscription, and is delivered after: a change newer than what was
/// read is told last. `broken_since`: the stream's last sign of life.
async fn mend(shared: &Shared, broken_since: Option<Instant>) {
    let Some(hole) = shared.hub.close_hole() else {
        return;
    };
    let broken_ms =
        broken_since.map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX));
    tracing::info!(
        broken_ms,
        fillable = hole.fillable(),
        delivered_meanwhile = hole.delivered.len(),
        "Redis subscription back: connections fill what they missed from the store"
    );
    restate_presence(shared).await;
}

/// Tells every followed user's status as the cluster holds it now (this
/// instance's own users are online whatever Redis says: its writer may
/// not have registered them again yet).
async fn restate_presence(shared: &Shared) {
    let read = async {
        let mut conn = match shared.current_link() {
            Some(conn) => conn,
            None => Shared::open_link(shared.client.clone(), shared.options.io_timeout).await?,
        };
        shared.presence.usernames(&mut conn).await
    };
    let names = match tokio::time::timeout(shared.options.io_timeout, read).await {
        Ok(Ok(names)) => names,
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not read presence after a Redis outage; followers learn it from the next changes");
            return;
        }
        Err(_) => {
            tracing::warn!("reading presence after a Redis outage timed out; followers learn it from the next changes");
            return;
        }
    };
    let mut online: HashSet<String> = names.iter().map(|name| name.to_ascii_lowercase()).collect();
    if let Ok(local) = chat_domain::Notifier::connected_users(&shared.hub).await {
        online.extend(local.iter().map(|name| name.as_str().to_ascii_lowercase()));
    }
    shared.hub.restate_presence(&online);
}

/// Delivers envelopes until the connection ends or stops answering, or
/// the writer finds Redis lost. Returns the subscription's last sign of
/// life: the last envelope received, or the last liveness check sent
/// that was answered (everything Redis sent before its answer was
/// received by then).
async fn listen(
    shared: &Shared,
    mut sink: PubSubSink,
    mut messages: redis::aio::PubSubStream,
) -> Instant {
    let writer_lost_redis = shared.resubscribe.notified();
    tokio::pin!(writer_lost_redis);
    // Registered now, so a notification while a message is handled counts.
    writer_lost_redis.as_mut().enable();
    let period = shared.options.heartbeat;
    let mut check = tokio::time::interval_at(Instant::now() + period, period);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut alive = Instant::now();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    alive = Instant::now();
                    deliver(shared, &message);
                }
                None => return alive,
            },
            () = &mut writer_lost_redis => return alive,
            _ = check.tick() => {
                let sent = Instant::now();
                let answered = tokio::time::timeout(
                    shared.options.io_timeout,
                    sink.subscribe(&shared.channel),
                )
                .await;
                match answered {
                    Ok(Ok(())) => alive = alive.max(sent),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "the Redis subscription failed its liveness check");
                        return alive;
                    }
                    Err(_) => {
                        tracing::warn!(
                            timeout_ms = u64::try_from(shared.options.io_timeout.as_millis()).unwrap_or(u64::MAX),
                            "the Redis subscription did not answer its liveness check: Redis paused or out of reach"
                        );
                        return alive;
                    }
                }
            }
        }
    }
}

fn deliver(shared: &Shared, message: &Msg) {
    let envelope = match envelope::decode(message.get_payload_bytes()) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "ignoring a malformed envelope on the events channel");
            return;
        }
    };
    let own = envelope.origin == shared.instance;
    match envelope.body {
        Body::Sync(token) if own => shared.synced(token),
        // Own frames were delivered locally when published; other
        // instances' markers are theirs.
        Body::Sync(_) | Body::Lost(_) if own => {}
        Body::Sync(_) => {}
        // Another instance could not publish for a while: the stretch is
        // a hole here too.
        Body::Lost(ago) => {
            metrics::counter!("chat_redis_loss_reports_total").increment(1);
            tracing::warn!(
                origin = envelope.origin,
                ago_ms = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX),
                "another instance could not publish for a while: connections fill what it dropped from the store"
            );
            let now = Instant::now();
            shared.hub.open_hole(now.checked_sub(ago).unwrap_or(now));
            shared.hub.close_hole();
        }
        // Own revocations were applied locally when made.
        Body::Revoked { .. } if own => {}
        Body::Revoked { user, token } => shared.hub.revoke(user, token),
        Body::Frame { .. } if own => {}
        // Decided by a presence script and read by every instance.
        Body::Frame { frame, .. } if envelope.origin == envelope::ANY_ORIGIN => {
            match envelope::presence_change(frame) {
                Some((username, status)) => shared.hub.presence_changed(&username, status),
                None => {
                    tracing::warn!("ignoring a malformed presence change on the events channel")
                }
            }
        }
        Body::Frame {
            audience,
            message,
            position,
            frame,
        } => {
            metrics::counter!("chat_redis_received_total").increment(1);
            shared
                .hub
                .deliver(Arc::from(frame), message, position, audience)
        }
    }
}
