DROP TABLE message_reactions;
DROP INDEX messages_reply_to_seq_idx;
DROP INDEX messages_changed_seq_idx;
ALTER TABLE messages DROP CONSTRAINT messages_changed_seq_key;
DROP TRIGGER messages_assign_changed_seq ON messages;
DROP FUNCTION messages_assign_changed_seq();
DROP TRIGGER messages_check_reply ON messages;
DROP FUNCTION messages_check_reply();
ALTER TABLE messages DROP CONSTRAINT messages_reply_to_fkey;
DELETE FROM messages WHERE deleted_at IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_content_length;
ALTER TABLE messages ADD CONSTRAINT messages_content_length CHECK (char_length(content) BETWEEN 1 AND 4000);
ALTER TABLE messages
    DROP COLUMN changed_seq,
    DROP COLUMN deleted_at,
    DROP COLUMN edited_at,
    DROP COLUMN reply_to;
