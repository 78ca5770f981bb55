-- pgusers schema, version 1: accounts, sessions and run-time settings.
-- Uniqueness is the database's job: usernames and emails are unique regardless of letter case.

CREATE TABLE users (
    userid        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL CHECK (char_length(username) BETWEEN 1 AND 64),
    email         text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    admin         boolean     NOT NULL DEFAULT false,
    extra_data    jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- A session is known by the SHA-256 digest of its key; the key itself is never stored.
CREATE TABLE sessions (
    session_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_digest     bytea       NOT NULL CHECK (octet_length(key_digest) = 32),
    userid         bigint      NOT NULL REFERENCES users (userid) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    max_expires_at timestamptz,
    extra_data     jsonb
);
CREATE UNIQUE INDEX sessions_key_digest_key ON sessions (key_digest);
CREATE INDEX sessions_userid_idx ON sessions (userid);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Settings changed at run time through the API (e.g. the session TTL); absent means "as configured".
CREATE TABLE settings (
    name       text PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
