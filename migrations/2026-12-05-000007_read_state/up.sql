-- Read state: one read marker per user per conversation, and what an
-- unread count needs kept up to date so that it never counts a history.
--
-- Every message gets its conversation (`conv_key`) and its place in it
-- (`place`: 1, 2, 3, ... per conversation, in the store's order), drawn by
-- the insert trigger under the ordering lock; the conversation's row in
-- `conversations` holds its latest place and message (the list's order
-- and last message), written once per insert statement. A marker is the place of the last message its
-- user has read. Sending a message moves the sender's marker to it, so no
-- message of the user's own lies after their marker, and
--
--   unread = last_place - marker place - deleted messages of others after it
--
-- where the last term is read on a partial index of deleted messages. The
-- count costs two primary-key rows and an index range of deletions,
-- whatever the length of the history.
--
-- A move by a read (PUT .../read) takes a position from the one sequence
-- of new messages and changes, under the same lock (`read_seq`), so that
-- it is in the stream of changes a reconnecting client replays.

-- A conversation's key: the nil UUID for the global one, the room's id
-- for a room, and for a direct conversation a UUID made from the two
-- users' ids, in order (md5 of their text: 128 bits, like a UUID).
CREATE FUNCTION conversation_key(recipient uuid, sender uuid, room uuid) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN room IS NOT NULL THEN room
        WHEN recipient IS NOT NULL THEN
            md5(least(sender, recipient)::text || greatest(sender, recipient)::text)::uuid
        ELSE '00000000-0000-0000-0000-000000000000'::uuid
    END
$$;

-- One row per conversation with at least one message.
CREATE TABLE conversations (
    key             uuid   PRIMARY KEY,
    -- The two parties of a direct conversation (NULL otherwise), in
    -- order: a user's direct conversations are found through these.
    user_a          uuid,
    user_b          uuid,
    -- The place of the latest message: how many messages it has.
    last_place      bigint NOT NULL,
    -- The latest message and its position in the store's order (the
    -- conversation list's order).
    last_seq        bigint NOT NULL,
    last_message_id uuid   NOT NULL
);
CREATE INDEX conversations_user_a_idx ON conversations (user_a) WHERE user_a IS NOT NULL;
CREATE INDEX conversations_user_b_idx ON conversations (user_b) WHERE user_b IS NOT NULL;

ALTER TABLE messages ADD COLUMN conv_key uuid, ADD COLUMN place bigint;

-- Existing messages, in their order. Not a change of any message: the
-- trigger that gives every UPDATE a change position is off meanwhile.
ALTER TABLE messages DISABLE TRIGGER messages_assign_changed_seq;
WITH placed AS (
    SELECT id,
           conversation_key(recipient_id, sender_id, room_id) AS key,
           row_number() OVER (
               PARTITION BY conversation_key(recipient_id, sender_id, room_id) ORDER BY seq
           ) AS n
    FROM messages
)
UPDATE messages SET conv_key = placed.key, place = placed.n
FROM placed WHERE messages.id = placed.id;
ALTER TABLE messages ENABLE TRIGGER messages_assign_changed_seq;

ALTER TABLE messages ALTER COLUMN conv_key SET NOT NULL, ALTER COLUMN place SET NOT NULL;

INSERT INTO conversations (key, user_a, user_b, last_place, last_seq, last_message_id)
SELECT DISTINCT ON (conv_key)
       conv_key,
       CASE WHEN recipient_id IS NOT NULL THEN least(sender_id, recipient_id) END,
       CASE WHEN recipient_id IS NOT NULL THEN greatest(sender_id, recipient_id) END,
       place, seq, id
FROM messages
ORDER BY conv_key, seq DESC;

-- Deleted messages of a conversation after a place: the last term of an
-- unread count. Partial, so it holds deletions only.
CREATE INDEX messages_deleted_place_idx ON messages (conv_key, place)
    INCLUDE (sender_id) WHERE deleted_at IS NOT NULL;

CREATE TABLE read_markers (
    user_id    uuid   NOT NULL,
    conv_key   uuid   NOT NULL,
    -- The place of the last message read (0: none).
    place      bigint NOT NULL DEFAULT 0,
    message_id uuid,
    -- What the conversation is, as the stream of changes names it: the
    -- other party of a direct one (whose stream shows this marker too),
    -- or the room.
    peer_id    uuid,
    room_id    uuid,
    -- The position of the marker's latest move by a read, if any.
    read_seq   bigint,
    PRIMARY KEY (user_id, conv_key)
);
-- The stream of changes: a user's own moves, and the other party's in
-- their direct conversations.
CREATE INDEX read_markers_user_read_seq_idx ON read_markers (user_id, read_seq)
    WHERE read_seq IS NOT NULL;
CREATE INDEX read_markers_peer_read_seq_idx ON read_markers (peer_id, read_seq)
    WHERE read_seq IS NOT NULL AND peer_id IS NOT NULL;
-- Where the stream stands (the latest position of any change).
CREATE INDEX read_markers_read_seq_idx ON read_markers (read_seq) WHERE read_seq IS NOT NULL;

-- Existing users have read everything so far: the global conversation,
-- their rooms, their direct conversations.
INSERT INTO read_markers (user_id, conv_key, place, message_id)
SELECT u.id, '00000000-0000-0000-0000-000000000000'::uuid,
       coalesce(c.last_place, 0), c.last_message_id
FROM users u
LEFT JOIN conversations c ON c.key = '00000000-0000-0000-0000-000000000000'::uuid;
INSERT INTO read_markers (user_id, conv_key, place, message_id, room_id)
SELECT rm.user_id, rm.room_id, coalesce(c.last_place, 0), c.last_message_id, rm.room_id
FROM room_members rm
LEFT JOIN conversations c ON c.key = rm.room_id;
INSERT INTO read_markers (user_id, conv_key, place, message_id, peer_id)
SELECT c.user_a, c.key, c.last_place, c.last_message_id, c.user_b
FROM conversations c WHERE c.user_a IS NOT NULL
UNION ALL
SELECT c.user_b, c.key, c.last_place, c.last_message_id, c.user_a
FROM conversations c WHERE c.user_b IS NOT NULL AND c.user_b <> c.user_a;

-- A conversation's messages by place: the next place is one index probe
-- (the highest so far), and a place is never given twice.
ALTER TABLE messages ADD CONSTRAINT messages_conv_key_place_key UNIQUE (conv_key, place);

-- Every new message, under the ordering lock (see message_commit_order):
-- a resend of a client id its sender already stored is skipped here
-- (returning NULL skips the row, as ON CONFLICT DO NOTHING would), before
-- it takes a position or a place, so that places have no holes; then it
-- takes its position, and the next place of its conversation. Rows stored
-- earlier by the same statement are visible here (a VOLATILE trigger
-- function sees them), so a resend within one batch is skipped too, and
-- two messages of one conversation in one batch take consecutive places.
-- The conversation's row is written once per statement, after it (below):
-- updating it here, row by row, would make a batch of one conversation
-- walk an ever longer chain of versions of that one row.
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

-- Once per statement (a group-commit batch): each conversation's row gets
-- its latest message, and each sender's marker moves to their latest
-- message of each conversation.
CREATE FUNCTION messages_move_sender_markers() RETURNS trigger
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

CREATE TRIGGER messages_move_sender_markers AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION messages_move_sender_markers();

-- A marker starts at the conversation's latest message: a new user's
-- global one, and a member's on joining a room (again on re-joining).
CREATE FUNCTION read_markers_start_global() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_markers (user_id, conv_key, place, message_id)
    SELECT NEW.id, '00000000-0000-0000-0000-000000000000'::uuid,
           coalesce(c.last_place, 0), c.last_message_id
    FROM (SELECT 1) AS one
    LEFT JOIN conversations c ON c.key = '00000000-0000-0000-0000-000000000000'::uuid
    ON CONFLICT (user_id, conv_key) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER read_markers_start_global AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION read_markers_start_global();

CREATE FUNCTION read_markers_start_room() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, room_id)
    SELECT NEW.user_id, NEW.room_id, coalesce(c.last_place, 0), c.last_message_id, NEW.room_id
    FROM (SELECT 1) AS one
    LEFT JOIN conversations c ON c.key = NEW.room_id
    ON CONFLICT (user_id, conv_key) DO UPDATE
        SET place = EXCLUDED.place, message_id = EXCLUDED.message_id
        WHERE m.place < EXCLUDED.place;
    RETURN NULL;
END
$$;

CREATE TRIGGER read_markers_start_room AFTER INSERT ON room_members
    FOR EACH ROW EXECUTE FUNCTION read_markers_start_room();

-- A read: moves `reader`'s marker in conversation `key` to `message`.
-- Answers -1 when the message is not in that conversation, NULL when the
-- marker is there or further already, else the move's position (drawn
-- under the ordering lock, like a message's). Its own transaction
-- (autocommit), as a message insert: the lock is held until the commit.
CREATE FUNCTION read_markers_move(reader uuid, key uuid, message uuid, peer uuid, room uuid)
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
