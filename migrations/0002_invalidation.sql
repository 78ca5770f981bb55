-- Cache invalidation through LISTEN/NOTIFY, emitted by the database itself so that every writer
-- (another daemon, the admin CLI, a manual DELETE in psql) reaches every daemon's cache.
--
-- Channel `pgusers_invalidate`; a payload is a comma-separated list of items:
--   k:<hex sha256>  forget the session with this key digest
--   u:<userid>      forget every session of this user
--   *               forget everything
--   ttl             the session TTL setting changed
-- Payloads stay far below NOTIFY's 8000-byte limit: at most 100 items each, and a statement that
-- touches more than 1000 sessions or users sends "*" instead.

CREATE FUNCTION pgusers_notify_items(items text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    i integer := 1;
    n integer := coalesce(array_length(items, 1), 0);
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF n > 1000 THEN
        PERFORM pg_notify('pgusers_invalidate', '*');
        RETURN;
    END IF;
    WHILE i <= n LOOP
        PERFORM pg_notify('pgusers_invalidate', array_to_string(items[i:i + 99], ','));
        i := i + 100;
    END LOOP;
END $$;

-- Deleted sessions: only those still live matter (an expired one is never answered from a cache
-- without asking the database), so the janitor's purges stay silent.
CREATE FUNCTION pgusers_sessions_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgusers_notify_items(ARRAY(
        SELECT 'k:' || encode(key_digest, 'hex') FROM gone WHERE expires_at > now()));
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_deleted_notify AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pgusers_sessions_deleted();

-- A session whose key or owner changes in place (only by hand) is forgotten too.
CREATE FUNCTION pgusers_sessions_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgusers_notify_items(ARRAY(
        SELECT 'k:' || encode(o.key_digest, 'hex')
        FROM before_rows o JOIN after_rows n ON n.session_id = o.session_id
        WHERE n.key_digest <> o.key_digest OR n.userid <> o.userid
           OR n.extra_data IS DISTINCT FROM o.extra_data OR n.expires_at < o.expires_at
           OR n.max_expires_at IS DISTINCT FROM o.max_expires_at));
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_changed_notify AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_sessions_changed();

-- Users renamed, re-addressed, promoted or demoted, given a new password, or deleted.
CREATE FUNCTION pgusers_users_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pgusers_notify_items(ARRAY(SELECT 'u:' || userid FROM before_rows));
    ELSE
        PERFORM pgusers_notify_items(ARRAY(
            SELECT 'u:' || o.userid
            FROM before_rows o JOIN after_rows n ON n.userid = o.userid
            WHERE n.username <> o.username OR n.email <> o.email OR n.admin <> o.admin
               OR n.password_hash <> o.password_hash));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_updated_notify AFTER UPDATE ON users
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_users_changed();

CREATE TRIGGER users_deleted_notify AFTER DELETE ON users
    REFERENCING OLD TABLE AS before_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_users_changed();

CREATE FUNCTION pgusers_everything_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgusers_invalidate', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_truncated_notify AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_everything_changed();
CREATE TRIGGER users_truncated_notify AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_everything_changed();

CREATE FUNCTION pgusers_settings_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgusers_invalidate', 'ttl');
    RETURN NULL;
END $$;

CREATE TRIGGER settings_changed_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON settings
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_settings_changed();
