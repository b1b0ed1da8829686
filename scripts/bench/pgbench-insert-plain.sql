-- The plain-table ceiling: the same row with seq drawn in the statement,
-- for runs with the ordering trigger disabled
-- (ALTER TABLE messages DISABLE TRIGGER messages_assign_seq); every index
-- and constraint stays.
INSERT INTO messages (id, sender_id, sender, content, created_at, seq)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
         || '7' || substr(md5(random()::text), 1, 19))::uuid,
        '0190a000-0000-7000-8000-000000000001', 'pgbench_sender',
        'bench:pgbench:' || (random() * 1e9)::bigint, now(), nextval('messages_seq_seq'));
