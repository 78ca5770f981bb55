-- A username may not look like another one: each row keeps its name's confusable skeleton
-- (Unicode TR39, computed by the daemon: see `validate::username_skeleton`) under a unique index.
-- The daemon fills the column for existing rows at every start; a row whose skeleton another row
-- already holds keeps NULL here (NULLs never collide) and is named in a WARN at each start.
ALTER TABLE users ADD COLUMN username_skeleton text;
CREATE UNIQUE INDEX users_username_skeleton_key ON users (username_skeleton);
CREATE INDEX users_without_skeleton_idx ON users (userid) WHERE username_skeleton IS NULL;
