-- Every explicit delete of a session is announced, whatever its stored expiry: an instance that
-- has the session cached keeps a true expiry ahead of the stored one (it writes slid expiries
-- behind), and its clock may differ from the database's, so "already expired in the database"
-- does not mean "refused everywhere". Only the janitor's purge stays silent: it marks its own
-- transactions with the setting `pgusers.purge = 'on'` and deletes rows expired for a whole
-- refresh interval, which no instance accepts any more.
--
-- A statement deleting more than 1000 sessions sends "*" after counting at most 1001 rows,
-- without building the list of every deleted key first.

CREATE OR REPLACE FUNCTION pgusers_sessions_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('pgusers.purge', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF (SELECT count(*) FROM (SELECT 1 FROM gone LIMIT 1001) AS first_rows) > 1000 THEN
        PERFORM pg_notify('pgusers_invalidate', '*');
    ELSE
        PERFORM pgusers_notify_items(ARRAY(
            SELECT 'k:' || encode(key_digest, 'hex') FROM gone));
    END IF;
    RETURN NULL;
END $$;
