-- A group-commit batch of 256 direct messages over 50 pairs (pgbench_u1..50
-- to pgbench_u51..100), in one statement and transaction, as the server's
-- writer stores them under direct-message load (after
-- pgbench-batch-setup.sql).
INSERT INTO messages (id, sender_id, sender, recipient_id, recipient, content, created_at)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || '7' || substr(md5(random()::text), 1, 19))::uuid,
       ('0190a000-0000-7000-8000-' || lpad((1 + g % 50)::text, 12, '0'))::uuid,
       'pgbench_u' || (1 + g % 50),
       ('0190a000-0000-7000-8000-' || lpad((51 + g % 50)::text, 12, '0'))::uuid,
       'pgbench_u' || (51 + g % 50),
       'bench:pgbench:' || g, now()
FROM generate_series(1, 256) AS g
ORDER BY g;
