DROP INDEX messages_global_seq_idx;
DROP INDEX messages_direct_pair_seq_idx;
DROP INDEX messages_direct_sender_seq_idx;
DROP INDEX messages_direct_recipient_seq_idx;
DROP INDEX messages_room_id_seq_idx;

CREATE INDEX messages_global_id_idx
    ON messages (id) WHERE recipient_id IS NULL AND room_id IS NULL;
CREATE INDEX messages_direct_pair_id_idx
    ON messages (least(sender_id, recipient_id), greatest(sender_id, recipient_id), id)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_direct_sender_id_idx
    ON messages (sender_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_direct_recipient_id_idx
    ON messages (recipient_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_room_id_id_idx ON messages (room_id, id) WHERE room_id IS NOT NULL;

DROP TRIGGER messages_assign_seq ON messages;
DROP FUNCTION messages_assign_seq();
-- Dropping the column drops the sequence it owns and its unique constraint.
ALTER TABLE messages DROP COLUMN seq;
