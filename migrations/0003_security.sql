-- Brute-force throttling shared by every instance, and the audit trail of security events.

-- Failed logins per account (scope 'account', key = lower(username)) and per client address
-- (scope 'address', key = the address). A row is deleted by a successful login of the account
-- and by an admin unlock; the janitor deletes stale ones.
CREATE TABLE login_failures (
    scope           text        NOT NULL CHECK (scope IN ('account', 'address')),
    key             text        NOT NULL,
    failures        integer     NOT NULL,
    first_failure_at timestamptz NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX login_failures_last_failure_idx ON login_failures (last_failure_at);

CREATE TABLE audit_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    userid      bigint,
    username    text,
    client_addr text,
    instance    text        NOT NULL,
    detail      jsonb
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_userid_idx ON audit_events (userid);
