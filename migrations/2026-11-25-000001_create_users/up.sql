-- Accounts. The CHECKs mirror chat-domain's validation, so a row that the
-- application would refuse cannot get in through any other path either.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format
        CHECK (char_length(username) BETWEEN 3 AND 32 AND username ~ '^[A-Za-z0-9_.-]+$'),
    CONSTRAINT users_email_format
        CHECK (char_length(email) BETWEEN 3 AND 254 AND email LIKE '_%@_%'),
    CONSTRAINT users_password_hash_present CHECK (password_hash <> ''),
    -- Messages reference (id, username) so that their denormalized sender and
    -- recipient names can never disagree with the account.
    CONSTRAINT users_id_username_key UNIQUE (id, username)
);

-- Usernames and emails are unique case-insensitively; the spelling given at
-- registration is kept for display. The adapter maps a violation of either
-- index, by name, to username_taken / email_taken.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
