//! Typing notices: relayed, never stored.

use super::*;
use crate::error::DomainError;
use crate::ports::TypingTarget;

/// A harness whose notifier must stay silent and whose store is never written.
fn silent() -> Harness {
    let mut h = Harness::new();
    h.notifier.expect_publish().times(0);
    h.messages.expect_insert_message().times(0);
    h
}

#[tokio::test]
async fn typing_to_a_user_reaches_only_that_user() {
    let mut h = Harness::new();
    h.messages.expect_insert_message().times(0);
    let published = record_publishes(&mut h.notifier);

    h.build()
        .typing(&caller(&alice()), Some("Bob"), None)
        .await
        .expect("relays");

    assert_eq!(
        published.calls(),
        [(
            Event::Typing {
                from: alice().username,
                target: TypingTarget::Direct(bob().username),
            },
            Audience::Users(vec![bob().id])
        )]
    );
}

#[tokio::test]
async fn typing_in_a_room_reaches_the_other_members() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice(), &carol()]));
    h.messages.expect_insert_message().times(0);
    let published = record_publishes(&mut h.notifier);

    h.build()
        .typing(&caller(&alice()), None, Some(room_id(1)))
        .await
        .expect("relays");

    assert_eq!(
        published.calls(),
        [(
            Event::Typing {
                from: alice().username,
                target: TypingTarget::Room(room_id(1)),
            },
            Audience::Users(vec![bob().id, carol().id])
        )]
    );
}

#[tokio::test]
async fn typing_without_a_target_is_refused() {
    let result = silent().build().typing(&caller(&alice()), None, None).await;

    assert!(matches!(result, Err(DomainError::Validation { .. })));
}

#[tokio::test]
async fn typing_to_both_a_user_and_a_room_is_refused() {
    let result = silent()
        .build()
        .typing(&caller(&alice()), Some("bob"), Some(room_id(1)))
        .await;

    assert!(matches!(result, Err(DomainError::Validation { .. })));
}

#[tokio::test]
async fn typing_in_a_room_one_is_not_in_is_not_a_member() {
    let result = silent()
        .with_room(room(1, &bob(), &[&bob(), &carol()]))
        .build()
        .typing(&caller(&alice()), None, Some(room_id(1)))
        .await;

    assert_eq!(result, Err(DomainError::NotAMember));
}

#[tokio::test]
async fn typing_to_an_unknown_user_is_user_not_found() {
    let result = silent()
        .build()
        .typing(&caller(&alice()), Some("nobody"), None)
        .await;

    assert_eq!(result, Err(DomainError::UserNotFound));
}
