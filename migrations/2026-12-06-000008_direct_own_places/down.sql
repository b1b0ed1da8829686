-- Back to read_state's send path: direct conversations' senders get their
-- marker rows moved to their own latest message again, then the functions
-- as read_state made them.

INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, peer_id)
SELECT user_a, key, user_a_place, user_a_message_id, user_b
FROM conversations WHERE user_a_place IS NOT NULL
ON CONFLICT (user_id, conv_key) DO UPDATE
    SET place = EXCLUDED.place, message_id = EXCLUDED.message_id
    WHERE m.place < EXCLUDED.place;
INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, peer_id)
SELECT user_b, key, user_b_place, user_b_message_id, user_a
FROM conversations WHERE user_b_place IS NOT NULL
ON CONFLICT (user_id, conv_key) DO UPDATE
    SET place = EXCLUDED.place, message_id = EXCLUDED.message_id
    WHERE m.place < EXCLUDED.place;

CREATE OR REPLACE FUNCTION read_markers_move(reader uuid, key uuid, message uuid, peer uuid, room uuid)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    at_place bigint;
    moved bigint;
BEGIN
    SELECT place INTO at_place FROM messages WHERE id = message AND conv_key = key;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    -- Most reads of a conversation the user is reading move nothing:
    -- answered without the lock.
    IF EXISTS (
        SELECT 1 FROM read_markers
        WHERE user_id = reader AND conv_key = key AND place >= at_place
    ) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, peer_id, room_id, read_seq)
    VALUES (reader, key, at_place, message, peer, room, nextval('messages_seq_seq'))
    ON CONFLICT (user_id, conv_key) DO UPDATE
        SET place = EXCLUDED.place, message_id = EXCLUDED.message_id,
            read_seq = EXCLUDED.read_seq, peer_id = EXCLUDED.peer_id
        WHERE m.place < EXCLUDED.place
    RETURNING m.read_seq INTO moved;
    RETURN moved;
END
$$;
DROP FUNCTION read_markers_own_reaches(uuid, uuid, bigint);

CREATE OR REPLACE FUNCTION messages_move_sender_markers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH conversation_rows AS (
        INSERT INTO conversations AS c (key, user_a, user_b, last_place, last_seq, last_message_id)
        SELECT DISTINCT ON (conv_key)
               conv_key,
               CASE WHEN recipient_id IS NOT NULL THEN least(sender_id, recipient_id) END,
               CASE WHEN recipient_id IS NOT NULL THEN greatest(sender_id, recipient_id) END,
               place, seq, id
        FROM inserted
        ORDER BY conv_key, place DESC
        ON CONFLICT (key) DO UPDATE
            SET last_place = EXCLUDED.last_place,
                last_seq = EXCLUDED.last_seq,
                last_message_id = EXCLUDED.last_message_id
            WHERE c.last_place < EXCLUDED.last_place
    )
    INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, peer_id, room_id)
    SELECT DISTINCT ON (sender_id, conv_key)
           sender_id, conv_key, place, id, recipient_id, room_id
    FROM inserted
    ORDER BY sender_id, conv_key, place DESC
    ON CONFLICT (user_id, conv_key) DO UPDATE
        SET place = EXCLUDED.place, message_id = EXCLUDED.message_id
        WHERE m.place < EXCLUDED.place;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    IF NEW.client_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM messages WHERE sender_id = NEW.sender_id AND client_id = NEW.client_id
    ) THEN
        RETURN NULL;
    END IF;
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

ALTER TABLE conversations
    DROP COLUMN user_a_place, DROP COLUMN user_a_message_id,
    DROP COLUMN user_b_place, DROP COLUMN user_b_message_id;
