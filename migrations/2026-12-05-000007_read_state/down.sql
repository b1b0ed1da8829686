DROP FUNCTION read_markers_move(uuid, uuid, uuid, uuid, uuid);
DROP TRIGGER read_markers_start_room ON room_members;
DROP FUNCTION read_markers_start_room();
DROP TRIGGER read_markers_start_global ON users;
DROP FUNCTION read_markers_start_global();
DROP TRIGGER messages_move_sender_markers ON messages;
DROP FUNCTION messages_move_sender_markers();

-- The insert trigger as message_commit_order made it.
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    NEW.seq := nextval('messages_seq_seq');
    RETURN NEW;
END
$$;

DROP TABLE read_markers;
ALTER TABLE messages DROP CONSTRAINT messages_conv_key_place_key;
DROP INDEX messages_deleted_place_idx;
ALTER TABLE messages DROP COLUMN place, DROP COLUMN conv_key;
DROP TABLE conversations;
DROP FUNCTION conversation_key(uuid, uuid, uuid);
