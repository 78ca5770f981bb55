-- Login attempts are reserved before the password is hashed, so the throttle holds under
-- concurrency and across instances: `failures` now counts attempts (in flight or failed) in the
-- window, and `allowed` is how many the row admits (NULL: the configured threshold; after a lock,
-- one more attempt than were made, so locks keep escalating one attempt at a time).
ALTER TABLE login_failures ADD COLUMN allowed integer;

-- Account keys are now folded by PostgreSQL's lower(), like the account lookup; the few keys
-- that Rust's lower-casing folded differently are dropped (at worst a pending lock restarts).
DELETE FROM login_failures WHERE scope = 'account' AND key <> lower(key);
