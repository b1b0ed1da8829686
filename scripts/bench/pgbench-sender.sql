-- The sender row the pgbench inserts reference (messages_sender_fkey), run
-- once per scratch database by scripts/bench.sh.
INSERT INTO users (id, username, email, password_hash)
VALUES ('0190a000-0000-7000-8000-000000000001', 'pgbench_sender', 'pgbench@example.com', 'x');
