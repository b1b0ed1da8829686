-- The plain-table ceiling: the same row with seq drawn in the statement,
-- for runs with the ordering trigger disabled
-- (ALTER TABLE messages DISABLE TRIGGER messages_assign_seq); every index
-- and constraint stays. That trigger also gives a message its
-- conversation and place; here they are what it gives a global message,
-- with the seq as the place (unique, with holes: nothing reads the
-- counts in these runs).
WITH s AS (SELECT nextval('messages_seq_seq') AS v)
INSERT INTO messages (id, sender_id, sender, content, created_at, seq, conv_key, place)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
         || '7' || substr(md5(random()::text), 1, 19))::uuid,
       '0190a000-0000-7000-8000-000000000001', 'pgbench_sender',
       'bench:pgbench:' || (random() * 1e9)::bigint, now(), v,
       '00000000-0000-0000-0000-000000000000', v
FROM s;
