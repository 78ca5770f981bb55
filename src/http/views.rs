//! The JSON shapes the API answers with (user and session objects).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::paging::Page;
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;

/// A user object; it never contains the password hash.
#[derive(Serialize)]
pub struct UserView {
    pub userid: i64,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub extra_data: Option<Value>,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        Self {
            userid: u.userid,
            username: u.username,
            email: u.email,
            admin: u.admin,
            extra_data: u.extra_data,
            created_at: u.created_at,
        }
    }
}

/// A session object: the public id, never the key.
#[derive(Serialize)]
pub struct SessionView {
    pub session_id: i64,
    pub userid: i64,
    pub username: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub extra_data: Option<Value>,
    /// The client's address and user agent at login; `null` when not recorded.
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// A "remember me" session.
    pub remember: bool,
}

impl From<SessionRow> for SessionView {
    fn from(s: SessionRow) -> Self {
        Self {
            session_id: s.session_id,
            userid: s.userid,
            username: s.username,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_seen_at: s.last_seen_at,
            extra_data: s.extra_data,
            client_addr: s.client_addr.map(|a| a.to_string()),
            user_agent: s.user_agent,
            remember: s.remember,
        }
    }
}

/// A page of sessions and the `after` of the next page (none on the last).
#[derive(Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
    pub next_after: Option<i64>,
}

impl SessionList {
    pub fn page(rows: Vec<SessionRow>, page: &Page) -> Self {
        Self {
            next_after: page.next_after(&rows, |s| s.session_id),
            sessions: rows.into_iter().map(SessionView::from).collect(),
        }
    }
}
