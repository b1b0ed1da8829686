//! The Notifier contract suite of `chat-realtime`, run with two
//! `RedisNotifier` instances (each with its own hub) sharing the test
//! Redis: events are published on one, connections spread over both, so
//! every case crosses instances. Each test has its own key prefix.

mod support;

use chat_realtime::contract;
use chat_realtime_redis::RedisOptions;
use support::{cluster_of_two, unique_prefix};

async fn pair() -> (
    chat_realtime_redis::RedisNotifier,
    chat_realtime_redis::RedisNotifier,
) {
    cluster_of_two(RedisOptions::with_prefix(unique_prefix())).await
}

#[tokio::test]
async fn global_message_reaches_every_connection() {
    let (a, b) = pair().await;
    contract::global_message_reaches_every_connection(&a, &b).await;
}

#[tokio::test]
async fn users_audience_reaches_only_those_users() {
    let (a, b) = pair().await;
    contract::users_audience_reaches_only_those_users(&a, &b).await;
}

#[tokio::test]
async fn every_connection_of_a_user_gets_the_event() {
    let (a, b) = pair().await;
    contract::every_connection_of_a_user_gets_the_event(&a, &b).await;
}

#[tokio::test]
async fn typing_frames_have_the_spec_shape() {
    let (a, b) = pair().await;
    contract::typing_frames_have_the_spec_shape(&a, &b).await;
}

#[tokio::test]
async fn presence_online_on_first_connection_only() {
    let (a, b) = pair().await;
    contract::presence_online_on_first_connection_only(&a, &b).await;
}

#[tokio::test]
async fn presence_offline_on_last_close_only() {
    let (a, b) = pair().await;
    contract::presence_offline_on_last_close_only(&a, &b).await;
}

#[tokio::test]
async fn connected_users_and_online_among() {
    let (a, b) = pair().await;
    contract::connected_users_and_online_among(&a, &b).await;
}

#[tokio::test]
async fn frames_from_one_publisher_arrive_in_order() {
    let (a, b) = pair().await;
    contract::frames_from_one_publisher_arrive_in_order(&a, &b).await;
}

#[tokio::test]
async fn message_frames_name_their_message() {
    let (a, b) = pair().await;
    contract::message_frames_name_their_message(&a, &b).await;
}

#[tokio::test]
async fn one_fan_out_shares_one_text() {
    let (a, _b) = pair().await;
    contract::one_fan_out_shares_one_text(&a).await;
}

#[tokio::test]
async fn presence_changes_are_batched_and_merged() {
    let (a, b) = pair().await;
    contract::presence_changes_are_batched_and_merged(&a, &b).await;
}

#[tokio::test]
async fn presence_waits_beside_a_full_queue() {
    let mut options = RedisOptions::with_prefix(unique_prefix());
    options.hub.queue_capacity = 64;
    let (a, b) = cluster_of_two(options).await;
    contract::presence_waits_beside_a_full_queue(&a, &b, 64).await;
}

#[tokio::test]
async fn following_is_bounded_and_can_stop() {
    let (a, b) = pair().await;
    contract::following_is_bounded_and_can_stop(&a, &b).await;
}

#[tokio::test]
async fn a_revoked_token_closes_its_connections_everywhere() {
    let (a, b) = pair().await;
    contract::a_revoked_token_closes_its_connections_everywhere(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_without_slowing_others() {
    let mut options = RedisOptions::with_prefix(unique_prefix());
    options.hub.queue_capacity = 64;
    let (a, b) = cluster_of_two(options).await;
    contract::slow_reader_is_closed_without_slowing_others(&a, &b, 64).await;
}

/// The whole suite, three runs at once on one cluster, through
/// `dyn Notifier` as the service holds it, in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_concurrently_on_one_cluster() {
    let (a, b) = pair().await;
    let a: std::sync::Arc<dyn chat_domain::Notifier> = std::sync::Arc::new(a);
    let b: std::sync::Arc<dyn chat_domain::Notifier> = std::sync::Arc::new(b);
    let runs = [(&a, &b), (&b, &a), (&a, &b)].map(|(x, y)| {
        let (x, y) = (std::sync::Arc::clone(x), std::sync::Arc::clone(y));
        tokio::spawn(async move { contract::run_all(&*x, &*y, 256).await })
    });
    for run in runs {
        run.await.expect("suite passes");
    }
}
