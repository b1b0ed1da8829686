// @generated automatically by Diesel CLI.

diesel::table! {
    messages (id) {
        id -> Uuid,
        sender_id -> Uuid,
        sender -> Text,
        recipient_id -> Nullable<Uuid>,
        recipient -> Nullable<Text>,
        room_id -> Nullable<Uuid>,
        content -> Text,
        client_id -> Nullable<Text>,
        created_at -> Timestamptz,
        seq -> Int8,
        reply_to -> Nullable<Uuid>,
        edited_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        changed_seq -> Nullable<Int8>,
        conv_key -> Uuid,
        place -> Int8,
    }
}

diesel::table! {
    conversations (key) {
        key -> Uuid,
        user_a -> Nullable<Uuid>,
        user_b -> Nullable<Uuid>,
        last_place -> Nullable<Int8>,
        last_seq -> Nullable<Int8>,
        last_message_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    read_markers (user_id, conv_key) {
        user_id -> Uuid,
        conv_key -> Uuid,
        place -> Int8,
        message_id -> Nullable<Uuid>,
        peer_id -> Nullable<Uuid>,
        room_id -> Nullable<Uuid>,
        read_seq -> Nullable<Int8>,
    }
}

diesel::table! {
    message_reactions (message_id, user_id, emoji) {
        message_id -> Uuid,
        user_id -> Uuid,
        emoji -> Text,
        id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    room_members (room_id, user_id) {
        room_id -> Uuid,
        user_id -> Uuid,
        joined_at -> Timestamptz,
        join_seq -> Int8,
    }
}

diesel::table! {
    rooms (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(message_reactions -> users (user_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> users (user_id));
diesel::joinable!(rooms -> users (created_by));

diesel::allow_tables_to_appear_in_same_query!(
    conversations,
    message_reactions,
    messages,
    read_markers,
    revoked_tokens,
    room_members,
    rooms,
    users,
);
