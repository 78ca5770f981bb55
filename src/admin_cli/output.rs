//! What the admin commands print: aligned tables, or the API's JSON objects with `--json`.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Failure;
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;

/// The API's user object: never the password hash.
#[derive(Serialize)]
pub(super) struct UserView<'a> {
    userid: i64,
    username: &'a str,
    email: &'a str,
    admin: bool,
    extra_data: Option<&'a Value>,
    created_at: DateTime<Utc>,
}

impl<'a> From<&'a UserRow> for UserView<'a> {
    fn from(u: &'a UserRow) -> Self {
        Self {
            userid: u.userid,
            username: &u.username,
            email: &u.email,
            admin: u.admin,
            extra_data: u.extra_data.as_ref(),
            created_at: u.created_at,
        }
    }
}

/// The API's session object: the public id, never the key.
#[derive(Serialize)]
pub(super) struct SessionView<'a> {
    session_id: i64,
    userid: i64,
    username: &'a str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    extra_data: Option<&'a Value>,
    client_addr: Option<String>,
    user_agent: Option<&'a str>,
    remember: bool,
}

impl<'a> From<&'a SessionRow> for SessionView<'a> {
    fn from(s: &'a SessionRow) -> Self {
        Self {
            session_id: s.session_id,
            userid: s.userid,
            username: &s.username,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_seen_at: s.last_seen_at,
            extra_data: s.extra_data.as_ref(),
            client_addr: s.client_addr.map(|a| a.to_string()),
            user_agent: s.user_agent.as_deref(),
            remember: s.remember,
        }
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(super) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints `value` as pretty JSON followed by a newline.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Unavailable(format!("cannot format JSON: {e}")))?;
    emit(&format!("{text}\n"));
    Ok(())
}

/// A time as the tables show it.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub(super) fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.into()
}

/// Compact JSON, or `-` when there is none.
pub(super) fn extra(value: Option<&Value>) -> String {
    value.map_or_else(|| "-".into(), Value::to_string)
}

/// Columns padded to their widest cell; the last column is not padded.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = line(headers.iter().copied(), &widths);
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str), &widths));
    }
    out
}

fn line<'a>(cells: impl Iterator<Item = &'a str>, widths: &[usize]) -> String {
    let padded: Vec<String> = cells
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    format!("{}\n", padded.join("  ").trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![
            vec!["1".to_string(), "alice".to_string(), "yes".to_string()],
            vec!["10".to_string(), "bo".to_string(), "no".to_string()],
        ];
        let text = table(&["ID", "USERNAME", "ADMIN"], &rows);
        assert_eq!(
            text,
            "ID  USERNAME  ADMIN\n1   alice     yes\n10  bo        no\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }
}
