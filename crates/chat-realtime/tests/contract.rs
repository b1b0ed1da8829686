//! The Notifier contract suite, run against the in-process hub (one hub
//! standing in for both instances).

use chat_realtime::{contract, Hub, HubConfig};

fn hub() -> Hub {
    Hub::new(HubConfig::default())
}

#[tokio::test]
async fn global_message_reaches_every_connection() {
    let hub = hub();
    contract::global_message_reaches_every_connection(&hub, &hub).await;
}

#[tokio::test]
async fn users_audience_reaches_only_those_users() {
    let hub = hub();
    contract::users_audience_reaches_only_those_users(&hub, &hub).await;
}

#[tokio::test]
async fn every_connection_of_a_user_gets_the_event() {
    let hub = hub();
    contract::every_connection_of_a_user_gets_the_event(&hub, &hub).await;
}

#[tokio::test]
async fn typing_frames_have_the_spec_shape() {
    let hub = hub();
    contract::typing_frames_have_the_spec_shape(&hub, &hub).await;
}

#[tokio::test]
async fn presence_online_on_first_connection_only() {
    let hub = hub();
    contract::presence_online_on_first_connection_only(&hub, &hub).await;
}

#[tokio::test]
async fn presence_offline_on_last_close_only() {
    let hub = hub();
    contract::presence_offline_on_last_close_only(&hub, &hub).await;
}

#[tokio::test]
async fn connected_users_and_online_among() {
    let hub = hub();
    contract::connected_users_and_online_among(&hub, &hub).await;
}

#[tokio::test]
async fn frames_from_one_publisher_arrive_in_order() {
    let hub = hub();
    contract::frames_from_one_publisher_arrive_in_order(&hub, &hub).await;
}

#[tokio::test]
async fn message_frames_name_their_message() {
    let hub = hub();
    contract::message_frames_name_their_message(&hub, &hub).await;
}

#[tokio::test]
async fn one_fan_out_shares_one_text() {
    contract::one_fan_out_shares_one_text(&hub()).await;
}

#[tokio::test]
async fn presence_changes_are_batched_and_merged() {
    let hub = hub();
    contract::presence_changes_are_batched_and_merged(&hub, &hub).await;
}

#[tokio::test]
async fn presence_waits_beside_a_full_queue() {
    let hub = Hub::new(HubConfig { queue_capacity: 64 });
    contract::presence_waits_beside_a_full_queue(&hub, &hub, 64).await;
}

#[tokio::test]
async fn following_is_bounded_and_can_stop() {
    let hub = hub();
    contract::following_is_bounded_and_can_stop(&hub, &hub).await;
}

#[tokio::test]
async fn a_revoked_token_closes_its_connections_everywhere() {
    let hub = hub();
    contract::a_revoked_token_closes_its_connections_everywhere(&hub, &hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_without_slowing_others() {
    let hub = Hub::new(HubConfig { queue_capacity: 64 });
    contract::slow_reader_is_closed_without_slowing_others(&hub, &hub, 64).await;
}

/// The whole suite on one shared hub, through `dyn Notifier` as the
/// service holds it, with cases running concurrently: proves the cases
/// ignore each other's frames (as they must on a shared Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_concurrently_on_one_shared_hub() {
    let hub: std::sync::Arc<dyn chat_domain::Notifier> = std::sync::Arc::new(hub());
    let runs = (0..3).map(|_| {
        let hub = std::sync::Arc::clone(&hub);
        tokio::spawn(async move { contract::run_all(&*hub, &*hub, 256).await })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.expect("suite passes");
    }
}
