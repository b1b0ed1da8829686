-- Cheaper send path for read state: less work per message under the
-- ordering lock.
--
-- 1. A direct conversation's senders no longer get a marker row written
--    per send. The conversation's row (written once per insert statement
--    anyway) keeps each party's latest own message, and a user's
--    effective marker in a direct conversation is the further of their
--    marker row (moved by reads) and their own latest message: still no
--    own message after the effective marker, so
--
--      unread = last_place - effective place - deleted messages of others after it
--
--    Rooms and the global conversation keep the sender's marker row moved
--    by the statement trigger: a batch there has few senders.
-- 2. The insert trigger no longer probes for a resent client id. The
--    writer's INSERT carries ON CONFLICT (sender_id, client_id) DO
--    NOTHING, whose check runs after the BEFORE trigger, under the lock: a
--    skipped row draws a seq (gaps in seq are normal) but is never stored,
--    and the next place is read from the stored rows, so places stay
--    without holes. An insert without ON CONFLICT fails on the unique
--    index and stores nothing.

-- The place and id of user_a's and user_b's latest own message in a
-- direct conversation (NULL for rooms, the global conversation, and a
-- party who has sent nothing in it).
ALTER TABLE conversations
    ADD COLUMN user_a_place      bigint,
    ADD COLUMN user_a_message_id uuid,
    ADD COLUMN user_b_place      bigint,
    ADD COLUMN user_b_message_id uuid;

WITH own AS (
    SELECT DISTINCT ON (conv_key, sender_id) conv_key, sender_id, place, id
    FROM messages WHERE recipient_id IS NOT NULL
    ORDER BY conv_key, sender_id, place DESC
)
UPDATE conversations c SET user_a_place = own.place, user_a_message_id = own.id
FROM own WHERE own.conv_key = c.key AND own.sender_id = c.user_a;
WITH own AS (
    SELECT DISTINCT ON (conv_key, sender_id) conv_key, sender_id, place, id
    FROM messages WHERE recipient_id IS NOT NULL
    ORDER BY conv_key, sender_id, place DESC
)
UPDATE conversations c SET user_b_place = own.place, user_b_message_id = own.id
FROM own WHERE own.conv_key = c.key AND own.sender_id = c.user_b;

-- Every new message, under the ordering lock (see message_commit_order):
-- its position, then its conversation and the next place in it. Rows stored
-- earlier by the same statement are visible here (a VOLATILE trigger
-- function sees them), so two messages of one conversation in one batch
-- take consecutive places.
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

-- Once per statement (a group-commit batch): each conversation's row gets
-- its latest message and, if direct, each party's latest own message;
-- each sender's marker in a room or the global conversation moves to
-- their latest message there.
CREATE OR REPLACE FUNCTION messages_move_sender_markers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One sort of the batch by conversation and place, latest first: the
    -- conversation's latest message is the first row, each party's latest
    -- own one the first of theirs.
    WITH conversation_rows AS (
        INSERT INTO conversations AS c (key, user_a, user_b, last_place, last_seq, last_message_id,
                                        user_a_place, user_a_message_id,
                                        user_b_place, user_b_message_id)
        SELECT DISTINCT ON (conv_key)
               conv_key, party_a, party_b, place, seq, id,
               max(place) FILTER (WHERE sender_id = party_a) OVER whole,
               (array_agg(id) FILTER (WHERE sender_id = party_a) OVER whole)[1],
               max(place) FILTER (WHERE sender_id = party_b) OVER whole,
               (array_agg(id) FILTER (WHERE sender_id = party_b) OVER whole)[1]
        FROM (
            SELECT conv_key, sender_id, place, seq, id,
                   CASE WHEN recipient_id IS NOT NULL THEN least(sender_id, recipient_id) END
                       AS party_a,
                   CASE WHEN recipient_id IS NOT NULL THEN greatest(sender_id, recipient_id) END
                       AS party_b
            FROM inserted
        ) AS batch
        WINDOW whole AS (PARTITION BY conv_key ORDER BY place DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        ORDER BY conv_key, place DESC
        ON CONFLICT (key) DO UPDATE
            SET last_place = EXCLUDED.last_place,
                last_seq = EXCLUDED.last_seq,
                last_message_id = EXCLUDED.last_message_id,
                user_a_place = coalesce(EXCLUDED.user_a_place, c.user_a_place),
                user_a_message_id = coalesce(EXCLUDED.user_a_message_id, c.user_a_message_id),
                user_b_place = coalesce(EXCLUDED.user_b_place, c.user_b_place),
                user_b_message_id = coalesce(EXCLUDED.user_b_message_id, c.user_b_message_id)
            WHERE c.last_place < EXCLUDED.last_place
    )
    INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, room_id)
    SELECT DISTINCT ON (sender_id, conv_key)
           sender_id, conv_key, place, id, room_id
    FROM inserted
    WHERE recipient_id IS NULL
    ORDER BY sender_id, conv_key, place DESC
    ON CONFLICT (user_id, conv_key) DO UPDATE
        SET place = EXCLUDED.place, message_id = EXCLUDED.message_id
        WHERE m.place < EXCLUDED.place;
    RETURN NULL;
END
$$;

-- Whether `reader`'s own latest message in direct conversation `key` is at
-- `at_place` or further.
CREATE FUNCTION read_markers_own_reaches(reader uuid, key uuid, at_place bigint) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (
        SELECT 1 FROM conversations c
        WHERE c.key = read_markers_own_reaches.key
          AND ((c.user_a = reader AND c.user_a_place >= at_place)
               OR (c.user_b = reader AND c.user_b_place >= at_place))
    )
$$;

-- A read: moves `reader`'s marker in conversation `key` to `message`.
-- Answers -1 when the message is not in that conversation, NULL when the
-- effective marker (the marker, or in a direct conversation the reader's
-- own latest message if further) is there or further already, else the
-- move's position (drawn under the ordering lock, like a message's). The
-- store calls it in a batch of its group-commit writer, whose transaction
-- holds the lock until its commit.
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
    ) OR read_markers_own_reaches(reader, key, at_place) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    -- A send committed since may have passed the place: asked again, now
    -- that sends wait (a fresh snapshot per statement).
    IF read_markers_own_reaches(reader, key, at_place) THEN
        RETURN NULL;
    END IF;
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
