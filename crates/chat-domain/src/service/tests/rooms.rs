//! Rooms and membership.

use super::*;
use crate::error::DomainError;
use crate::pagination::PageRequest;

/// Records the rooms handed to the store.
fn record_creates(rooms: &mut MockRoomStore) -> Recorder<Room> {
    let recorder = Recorder::new();
    let sink = recorder.clone();
    rooms.expect_create_room().returning(move |room| {
        sink.push(room.clone());
        Ok(())
    });
    recorder
}

#[tokio::test]
async fn create_room_puts_the_creator_first_and_dedupes_members() {
    let mut h = Harness::new();
    let created = record_creates(&mut h.rooms);

    let room = h
        .build()
        .create_room(
            &caller(&alice()),
            "  general ",
            Some("chatter"),
            &[bob().id, alice().id, bob().id, carol().id],
        )
        .await
        .expect("creates");

    assert_eq!(room.members, [alice().id, bob().id, carol().id]);
    assert_eq!(room.created_by, alice().id);
    assert_eq!(room.created_at, now());
    assert_eq!(room.name.as_str(), "general");
    assert_eq!(room.description.as_str(), "chatter");
    assert_eq!(created.calls(), [room]);
}

#[tokio::test]
async fn create_room_alone_makes_the_creator_the_only_member() {
    let mut h = Harness::new();
    let created = record_creates(&mut h.rooms);

    let room = h
        .build()
        .create_room(&caller(&alice()), "solo", None, &[])
        .await
        .expect("creates");

    assert_eq!(room.members, [alice().id]);
    assert_eq!(room.description.as_str(), "");
    assert_eq!(created.calls().len(), 1);
}

#[tokio::test]
async fn create_room_with_an_unknown_member_stores_nothing() {
    let mut h = Harness::new();
    h.rooms.expect_create_room().times(0);

    let result = h
        .build()
        .create_room(
            &caller(&alice()),
            "general",
            None,
            &[bob().id, stranger().id],
        )
        .await;

    assert_eq!(result, Err(DomainError::UserNotFound));
}

#[tokio::test]
async fn create_room_with_a_blank_name_stores_nothing() {
    let mut h = Harness::new();
    h.rooms.expect_create_room().times(0);

    let result = h
        .build()
        .create_room(&caller(&alice()), "   ", None, &[])
        .await;

    assert!(matches!(
        result,
        Err(DomainError::Validation { field: "name", .. })
    ));
}

#[tokio::test]
async fn a_member_sees_the_room() {
    let general = room(1, &bob(), &[&bob(), &alice()]);
    let service = Harness::new().with_room(general.clone()).build();

    assert_eq!(
        service.room(&caller(&alice()), room_id(1)).await,
        Ok(general)
    );
}

#[tokio::test]
async fn a_non_member_does_not_see_the_room() {
    let service = Harness::new().with_room(room(1, &bob(), &[&bob()])).build();

    let result = service.room(&caller(&alice()), room_id(1)).await;

    assert_eq!(result, Err(DomainError::NotAMember));
}

#[tokio::test]
async fn an_unknown_room_is_room_not_found() {
    let service = Harness::new().build();

    let result = service.room(&caller(&alice()), room_id(1)).await;

    assert_eq!(result, Err(DomainError::RoomNotFound));
}

#[tokio::test]
async fn a_non_member_cannot_read_the_history() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob()]));
    h.messages.expect_room_messages().times(0);

    let result = h
        .build()
        .room_messages(&caller(&alice()), room_id(1), PageRequest::latest())
        .await;

    assert_eq!(result, Err(DomainError::NotAMember));
}

#[tokio::test]
async fn a_member_reads_the_history() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice()]));
    h.messages
        .expect_room_messages()
        .times(1)
        .withf(|id, page| *id == room_id(1) && *page == PageRequest::latest())
        .returning(|_, _| Ok(empty_page()));

    let result = h
        .build()
        .room_messages(&caller(&alice()), room_id(1), PageRequest::latest())
        .await;

    assert_eq!(result, Ok(empty_page()));
}

#[tokio::test]
async fn a_member_adds_someone() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice()]));
    h.rooms
        .expect_add_member()
        .times(1)
        .withf(|room, user| *room == room_id(1) && *user == carol().id)
        .returning(|_, _| Ok(true));

    let result = h
        .build()
        .add_member(&caller(&alice()), room_id(1), carol().id)
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn adding_a_member_again_succeeds() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice()]));
    h.rooms
        .expect_add_member()
        .times(1)
        .returning(|_, _| Ok(false));

    let result = h
        .build()
        .add_member(&caller(&alice()), room_id(1), bob().id)
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_non_member_cannot_add_anyone() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob()]));
    h.rooms.expect_add_member().times(0);

    let result = h
        .build()
        .add_member(&caller(&alice()), room_id(1), alice().id)
        .await;

    assert_eq!(result, Err(DomainError::NotAMember));
}

#[tokio::test]
async fn adding_an_unknown_user_is_user_not_found() {
    let mut h = Harness::new().with_room(room(1, &alice(), &[&alice()]));
    h.rooms.expect_add_member().times(0);

    let result = h
        .build()
        .add_member(&caller(&alice()), room_id(1), stranger().id)
        .await;

    assert_eq!(result, Err(DomainError::UserNotFound));
}

/// A harness for removals in bob's room of bob, alice and carol, expecting
/// exactly `removals` calls to the store to remove `user`.
fn removal(removals: usize, user: UserId) -> ChatService {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &alice(), &carol()]));
    h.rooms
        .expect_remove_member()
        .times(removals)
        .withf(move |room, removed| *room == room_id(1) && *removed == user)
        .returning(|_, _| Ok(true));
    h.build()
}

#[tokio::test]
async fn a_member_removes_themself() {
    let service = removal(1, alice().id);

    let result = service
        .remove_member(&caller(&alice()), room_id(1), alice().id)
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn the_creator_removes_another_member() {
    let service = removal(1, carol().id);

    let result = service
        .remove_member(&caller(&bob()), room_id(1), carol().id)
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_third_party_cannot_remove_a_member() {
    let service = removal(0, carol().id);

    let result = service
        .remove_member(&caller(&alice()), room_id(1), carol().id)
        .await;

    assert!(matches!(result, Err(DomainError::Forbidden(_))));
}

#[tokio::test]
async fn a_creator_who_left_cannot_remove_members() {
    // Bob created the room and left it.
    let mut h = Harness::new().with_room(room(1, &bob(), &[&alice(), &carol()]));
    h.rooms.expect_remove_member().times(0);

    let result = h
        .build()
        .remove_member(&caller(&bob()), room_id(1), carol().id)
        .await;

    assert_eq!(result, Err(DomainError::NotAMember));
}

#[tokio::test]
async fn leaving_a_room_one_already_left_succeeds() {
    let mut h = Harness::new().with_room(room(1, &bob(), &[&bob(), &carol()]));
    h.rooms
        .expect_remove_member()
        .times(1)
        .returning(|_, _| Ok(false));

    let result = h
        .build()
        .remove_member(&caller(&alice()), room_id(1), alice().id)
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn removing_from_an_unknown_room_is_room_not_found() {
    let mut h = Harness::new();
    h.rooms.expect_remove_member().times(0);

    let result = h
        .build()
        .remove_member(&caller(&alice()), room_id(1), alice().id)
        .await;

    assert_eq!(result, Err(DomainError::RoomNotFound));
}

#[tokio::test]
async fn user_rooms_asks_for_the_member_as_seen_by_the_caller() {
    let mut h = Harness::new();
    h.rooms
        .expect_rooms_of_user()
        .times(1)
        .withf(|member, viewer, page| {
            *member == bob().id && *viewer == alice().id && *page == PageRequest::latest()
        })
        .returning(|_, _, _| Ok(empty_page()));

    let result = h
        .build()
        .user_rooms(&caller(&alice()), bob().id, PageRequest::latest())
        .await;

    assert_eq!(result, Ok(empty_page()));
}

#[tokio::test]
async fn rooms_of_an_unknown_user_are_user_not_found() {
    let mut h = Harness::new();
    h.rooms.expect_rooms_of_user().times(0);

    let result = h
        .build()
        .user_rooms(&caller(&alice()), stranger().id, PageRequest::latest())
        .await;

    assert_eq!(result, Err(DomainError::UserNotFound));
}
