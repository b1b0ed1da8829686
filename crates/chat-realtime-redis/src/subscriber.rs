//! The subscriber task: listens on the events channel on its own
//! connection (a subscribed connection can do nothing else) and hands
//! every envelope not published by this instance to the local hub. When
//! the connection ends it subscribes again, with backoff.

use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::{Msg, RedisError};
use tokio::sync::oneshot;

use crate::envelope::{self, Body};
use crate::options::Backoff;
use crate::shared::Shared;

/// Runs until aborted. `started` is answered after the first attempt.
pub(crate) async fn run(shared: Arc<Shared>, started: oneshot::Sender<()>) {
    let mut started = Some(started);
    let mut backoff = Backoff::new(shared.options.max_backoff);
    let mut failing = false;
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
                listen(&shared, pubsub).await;
                shared.health.set_subscribed(false);
                shared.check_link.notify_one();
                tracing::warn!("lost the Redis subscription: other instances' events are missed until it is back");
            }
            Err(error) => {
                if failing {
                    tracing::debug!(%error, "still cannot subscribe to Redis");
                } else {
                    tracing::warn!(%error, "cannot subscribe to Redis: retrying with backoff");
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

/// Delivers envelopes until the connection ends or the writer finds Redis
/// lost.
async fn listen(shared: &Shared, pubsub: PubSub) {
    let mut messages = pubsub.into_on_message();
    let writer_lost_redis = shared.resubscribe.notified();
    tokio::pin!(writer_lost_redis);
    // Registered now, so a notification while a message is handled counts.
    writer_lost_redis.as_mut().enable();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => deliver(shared, &message),
                None => return,
            },
            () = &mut writer_lost_redis => return,
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
        Body::Sync(_) => {}
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
