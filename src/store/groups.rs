//! The `user_groups` table: which groups each user belongs to (a group exists while it has
//! members), the groups with their member counts, and the members of one group.

use super::users::{self, UserRow};
use super::{GenericClient, StoreError, StoreResult};

/// A group and how many users belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub name: String,
    pub members: i64,
}

/// A user's groups, sorted by name (byte order, whatever the database's collation).
pub async fn of_user(db: &impl GenericClient, userid: i64) -> StoreResult<Vec<String>> {
    const SQL: &str = "SELECT name FROM user_groups WHERE userid = $1 ORDER BY name COLLATE \"C\"";
    let stmt = db.prepare_cached(SQL).await?;
    db.query(&stmt, &[&userid])
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(StoreError::Db))
        .collect()
}

/// Replaces a user's groups with `names` (already checked, folded, sorted and deduplicated),
/// touching only the memberships that change; answers the groups the user had before, or
/// `None` when there is no such user. Run it in a transaction: the user row is locked first, so
/// concurrent replacements of one user's set apply one after the other, never mixed.
pub async fn replace(
    db: &impl GenericClient,
    userid: i64,
    names: &[String],
) -> StoreResult<Option<Vec<String>>> {
    const LOCK: &str = "SELECT 1 FROM users WHERE userid = $1 FOR NO KEY UPDATE";
    const REMOVE: &str = "DELETE FROM user_groups WHERE userid = $1 AND NOT (name = ANY($2))";
    const ADD: &str = "INSERT INTO user_groups (userid, name) SELECT $1, unnest($2::text[])
                       ON CONFLICT DO NOTHING";
    let lock = db.prepare_cached(LOCK).await?;
    if db.query_opt(&lock, &[&userid]).await?.is_none() {
        return Ok(None);
    }
    let before = of_user(db, userid).await?;
    let remove = db.prepare_cached(REMOVE).await?;
    db.execute(&remove, &[&userid, &names]).await?;
    let add = db.prepare_cached(ADD).await?;
    db.execute(&add, &[&userid, &names]).await?;
    Ok(Some(before))
}

/// Every group with its member count, by name.
pub async fn list(db: &impl GenericClient) -> StoreResult<Vec<GroupCount>> {
    const SQL: &str =
        "SELECT name, count(*) FROM user_groups GROUP BY name ORDER BY name COLLATE \"C\"";
    let stmt = db.prepare_cached(SQL).await?;
    db.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(GroupCount {
                name: r.try_get(0).map_err(StoreError::Db)?,
                members: r.try_get(1).map_err(StoreError::Db)?,
            })
        })
        .collect()
}

/// Members of a group with `userid > after`, in userid order, at most `limit`.
pub async fn members(
    db: &impl GenericClient,
    name: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<UserRow>> {
    let sql = format!(
        "SELECT {} FROM user_groups g JOIN users u ON u.userid = g.userid
         WHERE g.name = $1 AND g.userid > $2 ORDER BY g.userid LIMIT $3",
        users::COLUMNS_OF_U
    );
    let stmt = db.prepare_cached(&sql).await?;
    db.query(&stmt, &[&name, &after, &limit])
        .await?
        .iter()
        .map(users::from_row)
        .collect()
}

/// Whether the group has any member.
pub async fn exists(db: &impl GenericClient, name: &str) -> StoreResult<bool> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM user_groups WHERE name = $1)";
    let stmt = db.prepare_cached(SQL).await?;
    db.query_one(&stmt, &[&name])
        .await?
        .try_get(0)
        .map_err(StoreError::Db)
}
