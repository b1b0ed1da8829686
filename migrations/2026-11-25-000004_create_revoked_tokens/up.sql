-- Tokens revoked by logout or refresh, kept until they would have expired
-- anyway; shared by every instance and kept across restarts.
CREATE TABLE revoked_tokens (
    jti        uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- The purge deletes by expiry.
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
