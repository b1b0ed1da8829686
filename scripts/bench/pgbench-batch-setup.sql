-- Users for pgbench-batch-*.sql: pgbench_u1 .. pgbench_u100, ids
-- 0190a000-0000-7000-8000-000000000001 .. ...100.
INSERT INTO users (id, username, email, password_hash)
SELECT ('0190a000-0000-7000-8000-' || lpad(n::text, 12, '0'))::uuid,
       'pgbench_u' || n, 'pgbench_u' || n || '@example.com', 'x'
FROM generate_series(1, 100) AS n;
