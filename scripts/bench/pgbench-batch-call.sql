-- pgbench-batch-writer.sql's batch in the writer's shape since the
-- batch_insert migration: one call of messages_insert_batch over column
-- arrays (src/unnest.rs). N direct messages over 50 pairs
-- (pgbench_u1..50 to pgbench_u51..100, after pgbench-batch-setup.sql),
-- each with a client id, and no pair to register (the writer's batch
-- once it has registered its pairs):
-- `pgbench -D batch=N -f pgbench-batch-call.sql`.
SELECT f.*
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
messages_insert_batch(a.ids, a.senders, a.sender_names, a.recipients, a.recipient_names, a.rooms,
                      a.contents, a.client_ids, a.times, a.rooms,
                      ARRAY[]::uuid[], ARRAY[]::uuid[]) AS f;
