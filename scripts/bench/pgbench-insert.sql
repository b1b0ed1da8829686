-- One global message per transaction, as the server writes one: a
-- time-ordered id like UUIDv7, the sender's id and name (composite foreign
-- key), a distinct content. seq comes from the ordering trigger
-- (messages_assign_seq, which holds an advisory lock to the commit).
INSERT INTO messages (id, sender_id, sender, content, created_at)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
         || '7' || substr(md5(random()::text), 1, 19))::uuid,
        '0190a000-0000-7000-8000-000000000001', 'pgbench_sender',
        'bench:pgbench:' || (random() * 1e9)::bigint, now());
