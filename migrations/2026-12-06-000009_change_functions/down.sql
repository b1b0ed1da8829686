DROP FUNCTION message_react(uuid, uuid, text, boolean);
DROP FUNCTION message_delete(uuid, timestamptz);
DROP FUNCTION message_edit(uuid, text, timestamptz);
