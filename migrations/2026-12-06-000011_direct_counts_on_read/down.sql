-- Back to batch_insert: direct conversations counted on every send again.
-- Their places renumbered 1, 2, 3, ..., their markers moved to those
-- places, and their rows given their latest message and each party's
-- latest own one; then the functions as batch_insert and
-- direct_own_places left them.

DROP FUNCTION messages_insert_batch(uuid[], uuid[], text[], uuid[], text[], uuid[], text[], text[],
                                    timestamptz[], uuid[], uuid[], uuid[]);

ALTER TABLE messages DISABLE TRIGGER messages_assign_changed_seq;
WITH numbered AS (
    SELECT id, row_number() OVER (PARTITION BY conv_key ORDER BY seq) AS n
    FROM messages WHERE recipient_id IS NOT NULL
)
UPDATE messages SET place = numbered.n FROM numbered WHERE messages.id = numbered.id;
ALTER TABLE messages ENABLE TRIGGER messages_assign_changed_seq;
UPDATE read_markers m SET place = d.place
FROM messages d
WHERE d.id = m.message_id AND d.recipient_id IS NOT NULL AND m.place <> d.place;

ALTER TABLE conversations
    DROP CONSTRAINT conversations_counted_or_direct,
    ADD COLUMN user_a_place      bigint,
    ADD COLUMN user_a_message_id uuid,
    ADD COLUMN user_b_place      bigint,
    ADD COLUMN user_b_message_id uuid;
WITH latest AS (
    SELECT DISTINCT ON (conv_key) conv_key, place, seq, id
    FROM messages WHERE recipient_id IS NOT NULL
    ORDER BY conv_key, seq DESC
)
UPDATE conversations c
SET last_place = latest.place, last_seq = latest.seq, last_message_id = latest.id
FROM latest WHERE latest.conv_key = c.key;
DELETE FROM conversations WHERE last_seq IS NULL;
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
ALTER TABLE conversations
    ALTER COLUMN last_place SET NOT NULL,
    ALTER COLUMN last_seq SET NOT NULL,
    ALTER COLUMN last_message_id SET NOT NULL;

CREATE OR REPLACE FUNCTION read_markers_own_reaches(reader uuid, key uuid, at_place bigint) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (
        SELECT 1 FROM conversations c
        WHERE c.key = read_markers_own_reaches.key
          AND ((c.user_a = reader AND c.user_a_place >= at_place)
               OR (c.user_b = reader AND c.user_b_place >= at_place))
    )
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

-- An insert without a position of its own, under the ordering lock: its
-- position, then its conversation and the next place in it (the place
-- after the conversation's latest message, on that kind's history
-- index). Rows stored earlier by the same statement are visible here (a
-- VOLATILE trigger function sees them), so two messages of one
-- conversation in one statement take consecutive places.
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
        SELECT place + 1 INTO NEW.place FROM messages
        WHERE recipient_id IS NOT NULL AND conv_key = NEW.conv_key ORDER BY seq DESC LIMIT 1;
    ELSE
        NEW.conv_key := '00000000-0000-0000-0000-000000000000';
        SELECT place + 1 INTO NEW.place FROM messages
        WHERE recipient_id IS NULL AND room_id IS NULL ORDER BY seq DESC LIMIT 1;
    END IF;
    NEW.place := coalesce(NEW.place, 1);
    RETURN NEW;
END
$$;

-- A batch of new messages, one array per column, in queue order: stores
-- those whose sender has not stored their client id yet, and returns
-- them. conversation_key() is spelled out: a call per row costs more.
--
-- Its plan is made once per connection (a generic plan) and must stay
-- right as the tables grow: planned on a new, near-empty database, the
-- look-ups of used client ids and of the conversations' rows came out as
-- scans of the whole table, and each batch then took longer than the one
-- before. With sequential scans, hash and merge joins off, every look-up
-- is a probe of its index, whatever the statistics say.
CREATE FUNCTION messages_insert_batch(
    ids uuid[], sender_ids uuid[], senders text[], recipient_ids uuid[], recipients text[],
    room_ids uuid[], contents text[], client_ids text[], created timestamptz[], reply_tos uuid[])
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
        -- A conversation's row is read once, on its first row of the
        -- batch: the row is updated by every batch that writes to the
        -- conversation, and a look-up walks its chain of versions.
        SELECT nb.*,
               CASE WHEN nb.k = 1 THEN coalesce(
                   (SELECT c.last_place FROM conversations c WHERE c.key = nb.conv_key), 0)
               END AS base
        FROM numbered nb
    ), placed AS (
        SELECT bb.*, max(bb.base) OVER (PARTITION BY bb.conv_key) + bb.k AS place
        FROM based bb
    )
    -- nextval() after the sort (the planner evaluates a volatile output
    -- column after ORDER BY): positions in the order given.
    INSERT INTO messages AS m (id, sender_id, sender, recipient_id, recipient, room_id, content,
                               client_id, created_at, reply_to, conv_key, place, seq)
    SELECT p.id, p.sender_id, p.sender, p.recipient_id, p.recipient, p.room_id, p.content,
           p.client_id, p.created_at, p.reply_to, p.conv_key, p.place,
           nextval('messages_seq_seq')
    FROM placed p
    ORDER BY p.n
    RETURNING m.id, m.sender, m.recipient, m.room_id, m.content, m.created_at, m.seq,
              m.reply_to, m.edited_at, m.deleted_at;
END
$$;
