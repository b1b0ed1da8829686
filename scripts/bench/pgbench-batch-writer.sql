-- A group-commit batch of direct messages (pgbench -D batch=N) over 50 pairs
-- (pgbench_u1..50 to pgbench_u51..100) in the shape of the server's writer
-- statement before the batch_insert migration: one INSERT over column
-- arrays, each message with a client id (chat-bench sends one with every
-- message), resends skipped by ON CONFLICT (after
-- pgbench-batch-setup.sql). Runs on any schema since message_changes:
-- `pgbench -D batch=256 -f pgbench-batch-writer.sql`. The shape since:
-- pgbench-batch-call.sql.
INSERT INTO messages (id, sender_id, sender, recipient_id, recipient, room_id, content,
                      client_id, created_at, reply_to)
SELECT r.id, r.sender_id, r.sender, r.recipient_id, r.recipient, r.room_id, r.content,
       r.client_id, r.created_at, r.reply_to
FROM (
    SELECT array_agg((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
                      || '7' || substr(md5(random()::text), 1, 19))::uuid ORDER BY g) AS ids,
           array_agg(('0190a000-0000-7000-8000-' || lpad((1 + g % 50)::text, 12, '0'))::uuid
                     ORDER BY g) AS senders,
           array_agg('pgbench_u' || (1 + g % 50) ORDER BY g) AS sender_names,
           array_agg(('0190a000-0000-7000-8000-' || lpad((51 + g % 50)::text, 12, '0'))::uuid
                     ORDER BY g) AS recipients,
           array_agg('pgbench_u' || (51 + g % 50) ORDER BY g) AS recipient_names,
           array_agg(NULL::uuid) AS rooms,
           array_agg('bench pgbench ' || g ORDER BY g) AS contents,
           array_agg(md5(random()::text) ORDER BY g) AS client_ids,
           array_agg(now()) AS times
    FROM generate_series(1, :batch::int) AS g
) AS a,
unnest(a.ids, a.senders, a.sender_names, a.recipients, a.recipient_names, a.rooms,
       a.contents, a.client_ids, a.times, a.rooms)
    WITH ORDINALITY AS r(id, sender_id, sender, recipient_id, recipient, room_id, content,
                         client_id, created_at, reply_to, n)
ORDER BY n
ON CONFLICT (sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
RETURNING id, sender, recipient, room_id, content, created_at, seq;
