-- Messages. Ids are UUIDv7 assigned by the application, so ordering by id is
-- ordering by time and every history is paged on an index ending in id.
CREATE TABLE messages (
    id           uuid        PRIMARY KEY,
    sender_id    uuid        NOT NULL,
    -- The sender's and recipient's usernames, denormalized so that reads need
    -- no join; the composite foreign keys keep them equal to the account's.
    sender       text        NOT NULL,
    recipient_id uuid,
    recipient    text,
    room_id      uuid,
    content      text        NOT NULL,
    -- The sender's idempotency key for this message, when the client gave one.
    client_id    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_sender_fkey FOREIGN KEY (sender_id, sender)
        REFERENCES users (id, username) ON UPDATE CASCADE,
    CONSTRAINT messages_recipient_fkey FOREIGN KEY (recipient_id, recipient)
        REFERENCES users (id, username) ON UPDATE CASCADE,
    CONSTRAINT messages_room_id_fkey FOREIGN KEY (room_id) REFERENCES rooms (id),
    -- Exactly one of global (neither), direct (recipient) or room (room_id).
    CONSTRAINT messages_one_target
        CHECK (NOT (recipient_id IS NOT NULL AND room_id IS NOT NULL)),
    CONSTRAINT messages_recipient_complete
        CHECK ((recipient_id IS NULL) = (recipient IS NULL)),
    CONSTRAINT messages_content_length CHECK (char_length(content) BETWEEN 1 AND 4000),
    CONSTRAINT messages_client_id_length
        CHECK (client_id IS NULL OR char_length(client_id) BETWEEN 1 AND 64)
);

-- Idempotent sends: one message per (sender, client id). Partial, so the
-- many messages without a client id cost nothing here.
CREATE UNIQUE INDEX messages_sender_id_client_id_key
    ON messages (sender_id, client_id) WHERE client_id IS NOT NULL;

-- Global history.
CREATE INDEX messages_global_id_idx
    ON messages (id) WHERE recipient_id IS NULL AND room_id IS NULL;

-- A conversation between two users, in either direction: one index range
-- per pair, already in id order.
CREATE INDEX messages_direct_pair_id_idx
    ON messages (least(sender_id, recipient_id), greatest(sender_id, recipient_id), id)
    WHERE recipient_id IS NOT NULL;

-- One user's direct messages, sent and received (visible messages).
CREATE INDEX messages_direct_sender_id_idx
    ON messages (sender_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_direct_recipient_id_idx
    ON messages (recipient_id, id) WHERE recipient_id IS NOT NULL;

-- A room's history.
CREATE INDEX messages_room_id_id_idx ON messages (room_id, id) WHERE room_id IS NOT NULL;
