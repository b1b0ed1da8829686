-- A group-commit batch of 256 global messages from one sender, in one
-- statement and transaction, as the server's writer stores them under
-- fan-out load (after pgbench-batch-setup.sql).
INSERT INTO messages (id, sender_id, sender, content, created_at)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || '7' || substr(md5(random()::text), 1, 19))::uuid,
       '0190a000-0000-7000-8000-000000000001', 'pgbench_u1',
       'bench:pgbench:' || g, now()
FROM generate_series(1, 256) AS g
ORDER BY g;
