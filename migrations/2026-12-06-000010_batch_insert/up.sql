-- The writer's batches take their positions, conversations and places in
-- one set-based statement (messages_insert_batch), where the insert
-- trigger drew them row by row: a query per row inside the trigger cost
-- more under the ordering lock than the rest of the row's insert.
--
-- 1. messages_insert_batch() takes the ordering lock first, so that its
--    insert reads the conversations' rows in a snapshot taken after every
--    earlier holder committed (each statement of a VOLATILE function gets a
--    fresh one). A batch's places are then each conversation's
--    `last_place` plus the row's number among the batch's rows of that
--    conversation, and its positions the next values of the sequence, in
--    the order given.
-- 2. A resend (a client id its sender already stored) is left out before
--    places are numbered, by a look-up under the lock, so places stay
--    without holes. The insert has no ON CONFLICT: should a row conflict
--    anyway (two rows of one call with the same client id, which the
--    writer never sends), the whole call fails and stores nothing, where a
--    skipped row would leave a hole. The writer then writes its messages
--    one by one.
-- 3. The row trigger only runs for an insert that brings no `seq` of its
--    own: any other INSERT still gets its position, conversation and place
--    from it, as before. An INSERT that sets `seq` itself is trusted to
--    hold the lock and to set `conv_key` and `place`; only
--    messages_insert_batch() does.
-- 4. Places are no longer looked up by `(conv_key, place)`, so that index
--    goes, and a direct conversation's history is read by its key:
--    `(conv_key, seq)` replaces the pair index on least()/greatest() of
--    the two ids. Each row keeps as many indexes as before read state.

ALTER TABLE messages DROP CONSTRAINT messages_conv_key_place_key;
CREATE INDEX messages_direct_conv_key_seq_idx ON messages (conv_key, seq)
    WHERE recipient_id IS NOT NULL;
DROP INDEX messages_direct_pair_seq_idx;

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

DROP TRIGGER messages_assign_seq ON messages;
CREATE TRIGGER messages_assign_seq BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION messages_assign_seq();

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
