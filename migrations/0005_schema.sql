-- Since version 5 the daemon's objects live in their own schema (`database.schema`, default
-- `pgusers`; created, and a database of the older layout moved into it, before this file runs),
-- so that another `users`/`sessions` (the Python library's, in `public`) can sit beside them.
-- The invalidation functions name each other unqualified: pin their search_path to this schema
-- so a statement from any session (psql with the default search_path too) still finds them.

ALTER FUNCTION pgusers_notify_items(text[]) SET search_path FROM CURRENT;
ALTER FUNCTION pgusers_sessions_deleted() SET search_path FROM CURRENT;
ALTER FUNCTION pgusers_sessions_changed() SET search_path FROM CURRENT;
ALTER FUNCTION pgusers_users_changed() SET search_path FROM CURRENT;
ALTER FUNCTION pgusers_everything_changed() SET search_path FROM CURRENT;
ALTER FUNCTION pgusers_settings_changed() SET search_path FROM CURRENT;
