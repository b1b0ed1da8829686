-- Messages that change after they are stored: edits, deletions, reactions
-- and threads, and the stream of changes a reconnecting client replays.
--
-- Every change to a message takes a position from the same sequence, under
-- the same ordering lock, as new messages (messages_assign_seq): one order
-- of every new message and every change, in commit order, which is what a
-- frame's `cursor` names. A message keeps `seq` (its place in histories) and
-- gets `changed_seq`, the position of its latest change (NULL until it
-- changes), set by a BEFORE UPDATE trigger, so every UPDATE of a message is
-- a change, whoever issues it. A reaction touches its message (an UPDATE in
-- the same statement), which gives it its position.

ALTER TABLE messages
    ADD COLUMN reply_to    uuid,
    ADD COLUMN edited_at   timestamptz,
    ADD COLUMN deleted_at  timestamptz,
    ADD COLUMN changed_seq bigint;

-- A deleted message keeps no text.
ALTER TABLE messages DROP CONSTRAINT messages_content_length;
ALTER TABLE messages ADD CONSTRAINT messages_content_length CHECK (
    (deleted_at IS NULL AND char_length(content) BETWEEN 1 AND 4000)
    OR (deleted_at IS NOT NULL AND content = '')
);

-- The parent of a reply exists (the same-conversation rule is the trigger
-- below: a foreign key cannot compare the two rows' targets).
ALTER TABLE messages ADD CONSTRAINT messages_reply_to_fkey
    FOREIGN KEY (reply_to) REFERENCES messages (id);

CREATE FUNCTION messages_check_reply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent messages%ROWTYPE;
BEGIN
    SELECT * INTO parent FROM messages WHERE id = NEW.reply_to;
    IF NOT FOUND THEN
        RETURN NEW; -- the foreign key refuses it
    END IF;
    IF parent.room_id IS DISTINCT FROM NEW.room_id
       OR (NEW.recipient_id IS NULL) <> (parent.recipient_id IS NULL)
       OR (NEW.recipient_id IS NOT NULL AND (
             least(parent.sender_id, parent.recipient_id) <> least(NEW.sender_id, NEW.recipient_id)
             OR greatest(parent.sender_id, parent.recipient_id) <> greatest(NEW.sender_id, NEW.recipient_id)))
    THEN
        RAISE EXCEPTION 'a reply must be in its parent''s conversation'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_reply_same_conversation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_check_reply BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.reply_to IS NOT NULL)
    EXECUTE FUNCTION messages_check_reply();

-- Every change takes the next position under the ordering lock, as an
-- insert does (see message_commit_order).
CREATE FUNCTION messages_assign_changed_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7163082360046642290);
    NEW.changed_seq := nextval('messages_seq_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_assign_changed_seq BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_assign_changed_seq();

ALTER TABLE messages ADD CONSTRAINT messages_changed_seq_key UNIQUE (changed_seq);

-- The stream of changes after a position: only changed messages are in it.
CREATE INDEX messages_changed_seq_idx ON messages (changed_seq) WHERE changed_seq IS NOT NULL;

-- A thread, in order, and the reply counts of a page of parents.
CREATE INDEX messages_reply_to_seq_idx ON messages (reply_to, seq) WHERE reply_to IS NOT NULL;

-- One reaction per user per emoji per message; `id` keeps the order they
-- were made in (emojis are shown in the order first used).
CREATE TABLE message_reactions (
    message_id uuid        NOT NULL REFERENCES messages (id),
    user_id    uuid        NOT NULL REFERENCES users (id),
    emoji      text        NOT NULL,
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_reactions_pkey PRIMARY KEY (message_id, user_id, emoji),
    CONSTRAINT message_reactions_emoji_length CHECK (octet_length(emoji) BETWEEN 1 AND 32)
);

-- The reactions of a page of messages, in the order made.
CREATE INDEX message_reactions_message_id_idx ON message_reactions (message_id, id);
-- The primary key's user_id is second: reactions by a user (account
-- removal) need their own index for the foreign key.
CREATE INDEX message_reactions_user_id_idx ON message_reactions (user_id);
