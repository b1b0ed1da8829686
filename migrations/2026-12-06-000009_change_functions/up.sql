-- Changes to a stored message as functions. The group-commit writer
-- applies every change under the ordering lock, one after the other on its
-- one connection; as statements of their own text they were parsed and
-- planned again on every call. A call of one of these is a statement of
-- fixed text the adapter keeps prepared, and PL/pgSQL keeps the plans of
-- the statements inside, so a change costs its execution only.
--
-- Each answers the position the change took (`changed_seq`, drawn by the
-- `message_changes` migration's update trigger), or NULL when it changed
-- nothing: an unknown or deleted message, a reaction already there (or,
-- taken back, not there).

CREATE FUNCTION message_edit(message uuid, new_content text, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    position bigint;
BEGIN
    UPDATE messages SET content = new_content, edited_at = at
    WHERE id = message AND deleted_at IS NULL
    RETURNING changed_seq INTO position;
    RETURN position;
END
$$;

-- The text goes with the deletion (the row keeps ''), and so do the
-- reactions.
CREATE FUNCTION message_delete(message uuid, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    position bigint;
BEGIN
    UPDATE messages SET content = '', deleted_at = at
    WHERE id = message AND deleted_at IS NULL
    RETURNING changed_seq INTO position;
    IF position IS NOT NULL THEN
        DELETE FROM message_reactions WHERE message_id = message;
    END IF;
    RETURN position;
END
$$;

-- A reaction added or taken back touches its message (an UPDATE of its
-- row), which gives the change its position, only if it changed anything.
CREATE FUNCTION message_react(message uuid, reactor uuid, reaction text, adding boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    position bigint;
BEGIN
    IF adding THEN
        INSERT INTO message_reactions (message_id, user_id, emoji)
        SELECT id, reactor, reaction FROM messages WHERE id = message AND deleted_at IS NULL
        ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM message_reactions r USING messages m
        WHERE r.message_id = message AND r.user_id = reactor AND r.emoji = reaction
          AND m.id = r.message_id AND m.deleted_at IS NULL;
    END IF;
    IF FOUND THEN
        UPDATE messages SET changed_seq = NULL WHERE id = message
        RETURNING changed_seq INTO position;
    END IF;
    RETURN position;
END
$$;
