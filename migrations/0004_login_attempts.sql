-- Login attempts are reserved before the password is hashed, so the throttle holds under
-- concurrency and across instances: `failures` now counts attempts (in flight or failed) in the
-- window, and `allowed` is how many the row admits (NULL: the configured threshold; after a lock,
-- one more attempt than were made, so locks keep escalating one attempt at a time).
ALTER TABLE login_failures ADD COLUMN allowed integer;
