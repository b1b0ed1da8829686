-- read-state-seed.sql: a user in 1,000 conversations with 1,000,000
-- messages stored, for the EXPLAIN of the conversation list and unread
-- counts (docs/postgres.md, "Read state") and for benchmarking
-- GET /api/conversations. Run on an empty database with every migration
-- applied (about 3 minutes on a 2-core machine):
--
--   psql -v ON_ERROR_STOP=1 -d chat_reads -f scripts/bench/read-state-seed.sql
--
-- 2,000 users `user0000`..`user1999` (password hash: bcrypt cost 4 of
-- "correct horse battery"); `user0000`, the reader, is in 500 rooms of 20
-- members and has 499 direct conversations (with user0001..user0499), so
-- 1 + 500 + 499 = 1,000 conversations. 1,000,000 messages over 30 days,
-- through the insert triggers (places, conversation rows, sender markers):
-- 400,000 global, 300,000 in the 500 rooms, 300,000 direct (half of them
-- in the reader's conversations); 1 % deleted. The reader has read the
-- first half of each of their conversations.

CREATE FUNCTION pg_temp.uuid7_at(ts timestamptz) RETURNS uuid AS $$
  SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
          || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid
$$ LANGUAGE sql VOLATILE;

CREATE TEMP TABLE u AS
  SELECT n, pg_temp.uuid7_at(now() - interval '60 days' + n * interval '1 second') AS id,
         format('user%s', lpad(n::text, 4, '0')) AS username
  FROM generate_series(0, 1999) AS n;
INSERT INTO users (id, username, email, password_hash, created_at)
  SELECT id, username, username || '@example.com',
         '$2b$04$a3SNCgwKel93hLJz.GuBvuUrVSrC9XZ2UMHj7ipKXk2GfoEfcIqTS', now()
  FROM u ORDER BY n;

CREATE TEMP TABLE r AS
  SELECT n, pg_temp.uuid7_at(now() - interval '59 days' + n * interval '1 second') AS id
  FROM generate_series(0, 499) AS n;
INSERT INTO rooms (id, name, created_by, created_at)
  SELECT r.id, 'room ' || r.n, u.id, now() FROM r JOIN u ON u.n = 0;
-- The reader and 19 others in each room.
INSERT INTO room_members (room_id, user_id)
  SELECT r.id, u.id FROM r, generate_series(0, 19) AS m JOIN u ON true
  WHERE u.n = CASE WHEN m = 0 THEN 0 ELSE 500 + (r.n * 19 + m) % 1500 END;

-- Message i: global when i % 10 < 4, a room when < 7, else direct; half
-- the direct ones between the reader and user0001..0499, the others
-- between pairs of user0500..1999.
INSERT INTO messages (id, sender_id, sender, recipient_id, recipient, room_id, content, created_at)
SELECT pg_temp.uuid7_at(g.ts), s.id, s.username,
       d.id, d.username, rr.id,
       'message number ' || g.i, g.ts
FROM (
  SELECT i, now() - interval '30 days' + i * interval '2.5 seconds' AS ts,
         CASE WHEN i % 10 < 4 THEN 'g' WHEN i % 10 < 7 THEN 'r' ELSE 'd' END AS kind,
         (i / 10) % 500 AS rn,
         i % 2 = 0 AS mine,
         1 + (i / 10) % 499 AS friend,
         500 + (i * 7) % 1500 AS a,
         500 + (i * 7 + 1 + (i / 10) % 1499) % 1500 AS b
  FROM generate_series(1, 1000000) AS i
) g
JOIN u s ON s.n = CASE
    WHEN g.kind = 'd' AND g.mine THEN CASE WHEN (g.i / 20) % 2 = 0 THEN 0 ELSE g.friend END
    WHEN g.kind = 'd' THEN g.a
    WHEN g.kind = 'r' THEN CASE WHEN g.i % 3 = 0 THEN 0 ELSE 500 + (g.rn * 19 + 1 + g.i % 19) % 1500 END
    ELSE 500 + g.i % 1500 END
LEFT JOIN u d ON g.kind = 'd' AND d.n = CASE
    WHEN g.mine THEN CASE WHEN (g.i / 20) % 2 = 0 THEN g.friend ELSE 0 END
    ELSE g.b END
LEFT JOIN r rr ON g.kind = 'r' AND rr.n = g.rn
ORDER BY g.i;

-- 1 % deleted (tombstones: no content).
ALTER TABLE messages DISABLE TRIGGER messages_assign_changed_seq;
UPDATE messages SET deleted_at = created_at + interval '1 minute', content = ''
  WHERE seq % 100 = 42;
ALTER TABLE messages ENABLE TRIGGER messages_assign_changed_seq;

-- The reader has read the first half of each conversation (in a direct
-- one, their own latest message counts too: the effective marker is the
-- further of the two).
WITH mine AS (
  SELECT c.key, c.user_a, c.user_b, u.id AS reader
  FROM conversations c JOIN u ON u.n = 0
  WHERE c.key = '00000000-0000-0000-0000-000000000000'
     OR c.user_a = u.id OR c.user_b = u.id
     OR c.key IN (SELECT room_id FROM room_members WHERE user_id = u.id)
), numbered AS (
  SELECT conv_key, place, id,
         row_number() OVER (PARTITION BY conv_key ORDER BY seq) AS k,
         count(*) OVER (PARTITION BY conv_key) AS total
  FROM messages WHERE conv_key IN (SELECT key FROM mine)
)
INSERT INTO read_markers AS m (user_id, conv_key, place, message_id, peer_id, room_id)
SELECT c.reader, c.key, n.place, n.id,
       CASE WHEN c.user_a = c.reader THEN c.user_b WHEN c.user_b = c.reader THEN c.user_a END,
       CASE WHEN EXISTS (SELECT 1 FROM rooms WHERE id = c.key) THEN c.key END
FROM mine c JOIN numbered n ON n.conv_key = c.key AND n.k = n.total / 2
ON CONFLICT (user_id, conv_key) DO UPDATE
  SET place = EXCLUDED.place, message_id = EXCLUDED.message_id;

VACUUM ANALYZE;
