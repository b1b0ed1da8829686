DROP FUNCTION messages_insert_batch(uuid[], uuid[], text[], uuid[], text[], uuid[], text[], text[],
                                    timestamptz[], uuid[]);

DROP TRIGGER messages_assign_seq ON messages;
CREATE TRIGGER messages_assign_seq BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_assign_seq();

-- The function as direct_own_places left it.
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    NEW.seq := nextval('messages_seq_seq');
    -- conversation_key(), spelled out: a function call per row costs more
    -- than the branch.
    IF NEW.room_id IS NOT NULL THEN
        NEW.conv_key := NEW.room_id;
    ELSIF NEW.recipient_id IS NOT NULL THEN
        NEW.conv_key := md5(least(NEW.sender_id, NEW.recipient_id)::text
                            || greatest(NEW.sender_id, NEW.recipient_id)::text)::uuid;
    ELSE
        NEW.conv_key := '00000000-0000-0000-0000-000000000000';
    END IF;
    -- ORDER BY ... LIMIT 1 rather than max(): always the backward probe of
    -- the index, where max() may be planned (on a small table) as a scan
    -- of every entry of the conversation.
    SELECT place + 1 INTO NEW.place FROM messages
    WHERE conv_key = NEW.conv_key ORDER BY place DESC LIMIT 1;
    NEW.place := coalesce(NEW.place, 1);
    RETURN NEW;
END
$$;

CREATE INDEX messages_direct_pair_seq_idx
    ON messages (least(sender_id, recipient_id), greatest(sender_id, recipient_id), seq)
    WHERE recipient_id IS NOT NULL;
DROP INDEX messages_direct_conv_key_seq_idx;
ALTER TABLE messages ADD CONSTRAINT messages_conv_key_place_key UNIQUE (conv_key, place);
