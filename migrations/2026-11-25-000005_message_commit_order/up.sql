-- Gap-free history. Message ids are UUIDv7 made by the
-- application before the insert, so two writers can commit out of id order:
-- a reader paging with `after=<id>` past a message that is not committed yet
-- would never see it. Every message therefore gets `seq`, its position in
-- COMMIT order, and every history is ordered and paged on it. Cursors on the
-- wire stay message ids; the store resolves an id to its seq.
--
-- How seq follows commit order: a BEFORE INSERT trigger takes a
-- transaction-level advisory lock dedicated to message ordering, then draws
-- the next value of messages_seq_seq. The lock is held until the inserting
-- transaction ends, and PostgreSQL makes a commit visible before it releases
-- the transaction's locks, so the next writer draws a larger seq only after
-- this row is visible: a reader that saw seq N can never later see a new row
-- with seq < N. The trigger makes this hold for every INSERT, whatever
-- issued it. Cost: message inserts (all conversations) commit one at a time;
-- see docs/decisions.md and docs/benchmarks.md. An insert of a message must
-- therefore be a transaction of its own (autocommit), never part of a
-- longer one that would hold the lock.

ALTER TABLE messages ADD COLUMN seq bigint;

-- Rows stored before this migration keep their id order.
WITH ordered AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages
)
UPDATE messages SET seq = ordered.n FROM ordered WHERE messages.id = ordered.id;

-- CACHE 1 (the default) matters: a session-cached block of values would
-- hand out numbers out of commit order.
CREATE SEQUENCE messages_seq_seq AS bigint CACHE 1 OWNED BY messages.seq;
SELECT setval('messages_seq_seq', coalesce(max(seq), 0) + 1, false) FROM messages;

ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;
ALTER TABLE messages ADD CONSTRAINT messages_seq_key UNIQUE (seq);

-- The lock key is arbitrary but fixed forever: ASCII of "chatordr".
CREATE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    NEW.seq := nextval('messages_seq_seq');
    RETURN NEW;
END
$$;

-- BEFORE, and assigning seq itself: a column default would be evaluated
-- before the trigger, that is before the lock.
CREATE TRIGGER messages_assign_seq BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_assign_seq();

-- Every history index now ends in seq instead of id.
DROP INDEX messages_global_id_idx;
DROP INDEX messages_direct_pair_id_idx;
DROP INDEX messages_direct_sender_id_idx;
DROP INDEX messages_direct_recipient_id_idx;
DROP INDEX messages_room_id_id_idx;

CREATE INDEX messages_global_seq_idx
    ON messages (seq) WHERE recipient_id IS NULL AND room_id IS NULL;
CREATE INDEX messages_direct_pair_seq_idx
    ON messages (least(sender_id, recipient_id), greatest(sender_id, recipient_id), seq)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_direct_sender_seq_idx
    ON messages (sender_id, seq) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_direct_recipient_seq_idx
    ON messages (recipient_id, seq) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_room_id_seq_idx ON messages (room_id, seq) WHERE room_id IS NOT NULL;
