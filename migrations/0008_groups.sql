-- Groups, for forward auth (`X-User-Groups`, `/v1/auth?group=`): a user belongs to any number of
-- groups (at most 64, checked by the daemon, which replaces a user's set under a lock of the user
-- row). A group is a name that has members; there is no group without one. Names are 1-64
-- characters of [a-z0-9_.-], stored lower-case (the daemon folds them on the way in).

CREATE TABLE user_groups (
    userid bigint NOT NULL REFERENCES users (userid) ON DELETE CASCADE,
    name   text   NOT NULL CHECK (name ~ '^[a-z0-9_.-]{1,64}$'),
    PRIMARY KEY (userid, name)
);
-- Members of a group, paged by userid.
CREATE INDEX user_groups_name_userid_idx ON user_groups (name, userid);

-- A membership added or removed changes the identity cached with every session of the user:
-- forget them all, on every daemon, as for an admin-flag change.
CREATE FUNCTION pgusers_groups_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pgusers_notify_items(ARRAY(SELECT DISTINCT 'u:' || userid FROM changed_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER user_groups_inserted_notify AFTER INSERT ON user_groups
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_groups_changed();
CREATE TRIGGER user_groups_deleted_notify AFTER DELETE ON user_groups
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_groups_changed();

-- An update in place (only by hand) can move a membership between users: both are told.
CREATE FUNCTION pgusers_groups_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pgusers_notify_items(ARRAY(
        SELECT 'u:' || userid FROM before_rows UNION SELECT 'u:' || userid FROM after_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER user_groups_updated_notify AFTER UPDATE ON user_groups
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_groups_updated();

CREATE TRIGGER user_groups_truncated_notify AFTER TRUNCATE ON user_groups
    FOR EACH STATEMENT EXECUTE FUNCTION pgusers_everything_changed();
