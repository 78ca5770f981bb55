-- Where a session was opened, for its owner's "Where am I signed in?" page, and whether it was a
-- "remember me" login (which slides by session.remember_ttl instead of session.ttl).
-- The address is the client's as the login throttle saw it (after trusted-proxy resolution);
-- the user agent is as sent, cut to 256 characters by the daemon. Older sessions have neither.

ALTER TABLE sessions
    ADD COLUMN client_addr inet,
    ADD COLUMN user_agent  text CHECK (char_length(user_agent) <= 256),
    ADD COLUMN remember    boolean NOT NULL DEFAULT false;
