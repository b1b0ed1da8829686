-- Direct conversations are counted when read, not kept counted on every
-- send: storing a direct message no longer reads or writes any row but
-- its own.
--
-- 1. A direct message's place is its position (`place = seq`): increasing
--    within the conversation, with gaps, drawn with the position and not
--    from the conversation's latest place. Markers in direct
--    conversations are positions too. Rooms and the global conversation
--    keep places 1, 2, 3, ... and their counted rows: a batch there has
--    few conversations, and a room's count would otherwise cost its
--    members' whole unread history.
-- 2. A direct conversation's row in `conversations` only says who talks
--    with whom (written once, when the two first talk): the list finds a
--    user's direct conversations there and reads each one's latest
--    message, the parties' latest own messages after their markers, and
--    the unread count from `messages_direct_conv_key_seq_idx`:
--
--      unread = messages after the effective marker - deleted ones after it
--
--    (the effective marker is the further of the marker and the user's
--    own latest message, so no own message lies after it). That is one
--    index entry per unread message, where rooms and the global
--    conversation cost two rows whatever their length.
-- 3. The writer knows which pairs it has registered: it passes
--    messages_insert_batch() only the pairs it has not seen. Any other
--    insert registers each direct message's pair in the insert trigger.

-- Existing direct messages and markers, to positions. Not a change of any
-- message: the trigger that gives every UPDATE a change position is off
-- meanwhile.
ALTER TABLE messages DISABLE TRIGGER messages_assign_changed_seq;
UPDATE messages SET place = seq WHERE recipient_id IS NOT NULL AND place <> seq;
ALTER TABLE messages ENABLE TRIGGER messages_assign_changed_seq;
UPDATE read_markers m SET place = d.seq
FROM messages d
WHERE d.id = m.message_id AND d.recipient_id IS NOT NULL AND m.place <> d.seq;

ALTER TABLE conversations
    DROP COLUMN user_a_place,
    DROP COLUMN user_a_message_id,
    DROP COLUMN user_b_place,
    DROP COLUMN user_b_message_id,
    ALTER COLUMN last_place DROP NOT NULL,
    ALTER COLUMN last_seq DROP NOT NULL,
    ALTER COLUMN last_message_id DROP NOT NULL;
UPDATE conversations SET last_place = NULL, last_seq = NULL, last_message_id = NULL
WHERE user_a IS NOT NULL;
-- A room's or the global conversation's row is counted; a direct one's
-- names its parties only.
ALTER TABLE conversations ADD CONSTRAINT conversations_counted_or_direct CHECK (
    CASE WHEN user_a IS NULL
         THEN user_b IS NULL AND last_place IS NOT NULL AND last_seq IS NOT NULL
              AND last_message_id IS NOT NULL
         ELSE user_b IS NOT NULL AND last_place IS NULL AND last_seq IS NULL
              AND last_message_id IS NULL END);

-- An insert without a position of its own, under the ordering lock: its
-- position, then its conversation and its place (the position itself in
-- a direct conversation, whose parties it registers; else the place
-- after the conversation's latest message, on that kind's history
-- index).
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    NEW.seq := nextval('messages_seq_seq');
    IF NEW.room_id IS NOT NULL THEN
        NEW.conv_key := NEW.room_id;
        SELECT place + 1 INTO NEW.place FROM messages
        WHERE room_id = NEW.room_id ORDER BY seq DESC LIMIT 1;
    ELSIF NEW.recipient_id IS NOT NULL THEN
        NEW.conv_key := md5(least(NEW.sender_id, NEW.recipient_id)::text
                            || greatest(NEW.sender_id, NEW.recipient_id)::text)::uuid;
        NEW.place := NEW.seq;
        INSERT INTO conversations (key, user_a, user_b)
        VALUES (NEW.conv_key, least(NEW.sender_id, NEW.recipient_id),
                greatest(NEW.sender_id, NEW.recipient_id))
        ON CONFLICT (key) DO NOTHING;
    ELSE
        NEW.conv_key := '00000000-0000-0000-0000-000000000000';
        SELECT place + 1 INTO NEW.place FROM messages
        WHERE recipient_id IS NULL AND room_id IS NULL ORDER BY seq DESC LIMIT 1;
    END IF;
    NEW.place := coalesce(NEW.place, 1);
    RETURN NEW;
END
$$;

-- Once per statement (a group-commit batch): each room's and the global
-- conversation's row gets its latest message, and each sender's marker
-- there moves to their latest message.
CREATE OR REPLACE FUNCTION messages_move_sender_markers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM inserted WHERE recipient_id IS NULL) THEN
        RETURN NULL;
    END IF;
    WITH conversation_rows AS (
        INSERT INTO conversations AS c (key, last_place, last_seq, last_message_id)
        SELECT DISTINCT ON (conv_key) conv_key, place, seq, id
        FROM inserted WHERE recipient_id IS NULL
        ORDER BY conv_key, place DESC
        ON CONFLICT (key) DO UPDATE
            SET last_place = EXCLUDED.last_place,
                last_seq = EXCLUDED.last_seq,
                last_message_id = EXCLUDED.last_message_id
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

-- Whether `reader` sent a message in direct conversation `key` at
-- `at_place` or after it: the messages after the one read, walked
-- forward.
CREATE OR REPLACE FUNCTION read_markers_own_reaches(reader uuid, key uuid, at_place bigint)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (
        SELECT 1 FROM messages m
        WHERE m.conv_key = read_markers_own_reaches.key AND m.recipient_id IS NOT NULL
          AND m.seq >= at_place AND m.sender_id = reader
    )
$$;

DROP FUNCTION messages_insert_batch(uuid[], uuid[], text[], uuid[], text[], uuid[], text[], text[],
                                    timestamptz[], uuid[]);

-- A batch of new messages, one array per column, in queue order, and the
-- direct pairs (`pair_a[i]` with `pair_b[i]`) whose conversation may be
-- new: registers those, stores the messages whose sender has not stored
-- their client id yet, and returns them. conversation_key() is spelled
-- out: a call per row costs more. A batch of direct messages only takes a
-- statement of its own that numbers no place: the numbering's window
-- sorts cost every batch they run for, even one with no place to number.
--
-- Its plan is made once per connection (a generic plan) and must stay
-- right as the tables grow: planned on a new, near-empty database, the
-- look-ups of used client ids and of the conversations' rows came out as
-- scans of the whole table, and each batch then took longer than the one
-- before. With sequential scans, hash and merge joins off, every look-up
-- is a probe of its index, whatever the statistics say.
CREATE FUNCTION messages_insert_batch(
    ids uuid[], sender_ids uuid[], senders text[], recipient_ids uuid[], recipients text[],
    room_ids uuid[], contents text[], client_ids text[], created timestamptz[], reply_tos uuid[],
    pair_a uuid[], pair_b uuid[])
RETURNS TABLE (id uuid, sender text, recipient text, room_id uuid, content text,
               created_at timestamptz, seq bigint, reply_to uuid,
               edited_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    IF cardinality(pair_a) > 0 THEN
        INSERT INTO conversations (key, user_a, user_b)
        SELECT md5(least(p.a, p.b)::text || greatest(p.a, p.b)::text)::uuid,
               least(p.a, p.b), greatest(p.a, p.b)
        FROM unnest(pair_a, pair_b) AS p(a, b)
        ON CONFLICT (key) DO NOTHING;
    END IF;
    -- Only direct messages (no NULL recipient): no place to number, no
    -- row to read; a direct message's place is its position.
    IF array_position(recipient_ids, NULL) IS NULL THEN
        RETURN QUERY
        WITH batch AS (
            SELECT r.*
            FROM unnest(ids, sender_ids, senders, recipient_ids, recipients, contents,
                        client_ids, created, reply_tos) WITH ORDINALITY
                 AS r(id, sender_id, sender, recipient_id, recipient, content, client_id,
                      created_at, reply_to, n)
            WHERE r.client_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM messages m
                WHERE m.sender_id = r.sender_id AND m.client_id = r.client_id
            )
        ), positioned AS (
            -- nextval() after the sort (the planner evaluates a volatile
            -- output column after ORDER BY): positions in the order given.
            SELECT b.*, nextval('messages_seq_seq') AS position
            FROM batch b
            ORDER BY b.n
        )
        INSERT INTO messages AS m (id, sender_id, sender, recipient_id, recipient, content,
                                   client_id, created_at, reply_to, conv_key, place, seq)
        SELECT p.id, p.sender_id, p.sender, p.recipient_id, p.recipient, p.content,
               p.client_id, p.created_at, p.reply_to,
               md5(least(p.sender_id, p.recipient_id)::text
                   || greatest(p.sender_id, p.recipient_id)::text)::uuid,
               p.position, p.position
        FROM positioned p
        ORDER BY p.n
        RETURNING m.id, m.sender, m.recipient, m.room_id, m.content, m.created_at, m.seq,
                  m.reply_to, m.edited_at, m.deleted_at;
    ELSE
        RETURN QUERY
        WITH batch AS (
            SELECT r.*,
                   CASE WHEN r.room_id IS NOT NULL THEN r.room_id
                        WHEN r.recipient_id IS NOT NULL THEN
                            md5(least(r.sender_id, r.recipient_id)::text
                                || greatest(r.sender_id, r.recipient_id)::text)::uuid
                        ELSE '00000000-0000-0000-0000-000000000000'::uuid END AS conv_key
            FROM unnest(ids, sender_ids, senders, recipient_ids, recipients, room_ids, contents,
                        client_ids, created, reply_tos) WITH ORDINALITY
                 AS r(id, sender_id, sender, recipient_id, recipient, room_id, content, client_id,
                      created_at, reply_to, n)
            WHERE r.client_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM messages m
                WHERE m.sender_id = r.sender_id AND m.client_id = r.client_id
            )
        ), numbered AS (
            SELECT b.*, row_number() OVER (PARTITION BY b.conv_key ORDER BY b.n) AS k
            FROM batch b
        ), based AS (
            -- A counted conversation's row is read once, on its first row of
            -- the batch: the row is updated by every batch that writes to the
            -- conversation, and a look-up walks its chain of versions.
            SELECT nb.*,
                   CASE WHEN nb.k = 1 AND nb.recipient_id IS NULL THEN coalesce(
                       (SELECT c.last_place FROM conversations c WHERE c.key = nb.conv_key), 0)
                   END AS base
            FROM numbered nb
        ), placed AS (
            SELECT bb.*, max(bb.base) OVER (PARTITION BY bb.conv_key) + bb.k AS place
            FROM based bb
        ), positioned AS (
            -- nextval() after the sort (the planner evaluates a volatile
            -- output column after ORDER BY): positions in the order given.
            SELECT p.*, nextval('messages_seq_seq') AS position
            FROM placed p
            ORDER BY p.n
        )
        INSERT INTO messages AS m (id, sender_id, sender, recipient_id, recipient, room_id, content,
                                   client_id, created_at, reply_to, conv_key, place, seq)
        SELECT p.id, p.sender_id, p.sender, p.recipient_id, p.recipient, p.room_id, p.content,
               p.client_id, p.created_at, p.reply_to, p.conv_key,
               CASE WHEN p.recipient_id IS NULL THEN p.place ELSE p.position END, p.position
        FROM positioned p
        ORDER BY p.n
        RETURNING m.id, m.sender, m.recipient, m.room_id, m.content, m.created_at, m.seq,
                  m.reply_to, m.edited_at, m.deleted_at;
    END IF;
END
$$;
