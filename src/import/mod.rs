//! `pgusers import`: brings the Python library's users and sessions (its `public.users` and
//! `public.sessions` tables) into the daemon's tables, in one transaction, with a report.
//!
//! Rules, applied in ascending `userid` order so that a re-run decides the same way:
//!
//! - A user keeps `userid`, `username`, `email`, `admin`; its PBKDF2 hash is kept as a PHC string
//!   (`$pbkdf2-sha512$…`, see `passwords`); a hash that is not what the library writes is
//!   replaced by one that never matches (listed: an admin must set a password).
//! - A user is left out (listed) when its username or email is missing or invalid today, when
//!   another user (already in the daemon, or a lower `userid` of the library) has the same
//!   username or email ignoring letter case, or a username that looks like it (the same
//!   confusable skeleton, see `validate::username_skeleton`), or when its `userid` is another
//!   user's in the daemon. A user whose `userid`, username and email are already there is "already present".
//! - A session is brought over as the SHA-256 of its key with its expiry, unless it has expired
//!   (counted), its user was not brought over, or its key is empty or too long (listed); when the
//!   library holds one key twice, the later expiry wins. A session whose digest is already there
//!   is "already present". The session key itself is never printed.
//! - `extra_data` pickles become JSON (see `pickle`); every value kept as `$pickle` is listed.

pub mod pickle;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::accounts::passwords::legacy_phc;
use crate::domain::keys::MAX_KEY_LEN;
use crate::domain::{validate, KeyDigest};

/// The password hash of an imported user whose library hash was unusable: it never verifies.
pub const UNUSABLE_HASH: &str = "!imported-without-a-usable-password";

/// A row of the library's `users` table.
#[derive(Debug, Clone)]
pub struct LibraryUser {
    pub userid: i64,
    pub username: Option<String>,
    pub email: Option<String>,
    pub salt: Option<String>,
    pub kpasswd: Option<String>,
    pub admin: bool,
    pub extra_data: Option<Vec<u8>>,
}

/// A row of the library's `sessions` table.
#[derive(Debug, Clone)]
pub struct LibrarySession {
    pub userid: Option<i64>,
    pub key: Option<String>,
    pub expiration: Option<f64>,
    pub extra_data: Option<Vec<u8>>,
}

/// A user already in the daemon's tables.
#[derive(Debug, Clone)]
pub struct ExistingUser {
    pub userid: i64,
    pub username: String,
    pub email: String,
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub userid: i64,
    pub username: String,
    /// The confusable skeleton of `username`, for the unique index.
    pub username_skeleton: String,
    pub email: String,
    pub password_hash: String,
    pub admin: bool,
    pub extra_data: Option<Json>,
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub digest: KeyDigest,
    pub userid: i64,
    pub expires_at: DateTime<Utc>,
    pub extra_data: Option<Json>,
}

/// What an import does (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub library_users: usize,
    pub library_sessions: usize,
    pub users_present: usize,
    pub sessions_present: usize,
    pub sessions_expired: usize,
    /// One line per user or session left out, saying why.
    pub left_out: Vec<String>,
    /// One line per imported user that cannot log in until an admin sets a password.
    pub unusable_passwords: Vec<String>,
    /// One line per `extra_data` kept (in part) as `$pickle`.
    pub kept_as_pickle: Vec<String>,
}

/// The rows to write and the report.
#[derive(Debug, Default)]
pub struct Plan {
    pub users: Vec<UserRow>,
    pub sessions: Vec<SessionRow>,
    pub report: Report,
}

fn extra(bytes: Option<&[u8]>, what: &str, report: &mut Report) -> Option<Json> {
    let converted = pickle::to_json(bytes?);
    if converted.kept_as_pickle {
        report
            .kept_as_pickle
            .push(format!("{what}: extra_data kept (in part) as $pickle"));
    }
    Some(converted.json).filter(|j| !j.is_null())
}

fn describe(u: &LibraryUser) -> String {
    format!(
        "user #{} {:?}",
        u.userid,
        u.username.as_deref().unwrap_or("")
    )
}

/// Decides every row. `existing` are the daemon's users; `present_digests` are those of the
/// library's session keys that the daemon already holds.
pub fn plan(
    mut users: Vec<LibraryUser>,
    sessions: Vec<LibrarySession>,
    existing: &[ExistingUser],
    present_digests: &HashSet<[u8; 32]>,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan::default();
    let report = &mut plan.report;
    report.library_users = users.len();
    report.library_sessions = sessions.len();
    users.sort_by_key(|u| u.userid);

    let by_id: HashMap<i64, &ExistingUser> = existing.iter().map(|e| (e.userid, e)).collect();
    let mut names: HashMap<String, i64> = existing
        .iter()
        .map(|e| (e.username.to_lowercase(), e.userid))
        .collect();
    let mut skeletons: HashMap<String, i64> = existing
        .iter()
        .map(|e| (validate::username_skeleton(&e.username), e.userid))
        .collect();
    let mut emails: HashMap<String, i64> = existing
        .iter()
        .map(|e| (e.email.to_lowercase(), e.userid))
        .collect();
    let mut owners: HashSet<i64> = HashSet::new();

    for u in &users {
        let who = describe(u);
        let username = u.username.clone().unwrap_or_default();
        let email = u.email.clone().unwrap_or_default();
        let (lname, lemail) = (username.to_lowercase(), email.to_lowercase());
        if let Some(e) = by_id.get(&u.userid) {
            if e.username.to_lowercase() == lname && e.email.to_lowercase() == lemail {
                report.users_present += 1;
                owners.insert(u.userid);
            } else {
                report.left_out.push(format!(
                    "{who}: left out, userid {} is already {:?} here",
                    u.userid, e.username
                ));
            }
            continue;
        }
        if let Err(e) = validate::username(&username) {
            report.left_out.push(format!("{who}: left out, {e}"));
            continue;
        }
        if let Err(e) = validate::email(&email) {
            report
                .left_out
                .push(format!("{who}: left out, {e} (email {email:?})"));
            continue;
        }
        if let Some(other) = names.get(&lname) {
            report.left_out.push(format!(
                "{who}: left out, username already used by user #{other} (letter case ignored; \
                 the lowest userid keeps it)"
            ));
            continue;
        }
        let skeleton = validate::username_skeleton(&username);
        if let Some(other) = skeletons.get(&skeleton) {
            report.left_out.push(format!(
                "{who}: left out, username looks like user #{other}'s (confusable characters; \
                 the lowest userid keeps it)"
            ));
            continue;
        }
        if let Some(other) = emails.get(&lemail) {
            report.left_out.push(format!(
                "{who}: left out, email {email:?} already used by user #{other} (letter case \
                 ignored; the lowest userid keeps it)"
            ));
            continue;
        }
        names.insert(lname, u.userid);
        skeletons.insert(skeleton.clone(), u.userid);
        emails.insert(lemail, u.userid);
        owners.insert(u.userid);
        let password_hash = match (u.salt.as_deref(), u.kpasswd.as_deref()) {
            (Some(salt), Some(key)) => legacy_phc(salt, key),
            _ => None,
        }
        .unwrap_or_else(|| {
            report.unusable_passwords.push(format!(
                "{who}: the stored password hash is not the library's; set a new password"
            ));
            UNUSABLE_HASH.to_owned()
        });
        let extra_data = extra(u.extra_data.as_deref(), &who, report);
        plan.users.push(UserRow {
            userid: u.userid,
            username,
            username_skeleton: skeleton,
            email,
            password_hash,
            admin: u.admin,
            extra_data,
        });
    }

    let now_secs = now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6;
    let mut chosen: HashMap<[u8; 32], SessionRow> = HashMap::new();
    let mut duplicates = 0usize;
    for s in sessions {
        let Some(expiration) = s.expiration.filter(|e| *e > now_secs) else {
            report.sessions_expired += 1;
            continue;
        };
        let Some(expires_at) = DateTime::from_timestamp_micros((expiration * 1e6) as i64) else {
            report.sessions_expired += 1;
            continue;
        };
        let owner = s.userid.unwrap_or(0);
        let what = format!("a session of user #{owner} (expiring {expires_at})");
        if !owners.contains(&owner) {
            report
                .left_out
                .push(format!("{what}: left out, its user is not brought over"));
            continue;
        }
        let key = s.key.unwrap_or_default();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            report
                .left_out
                .push(format!("{what}: left out, its key is empty or too long"));
            continue;
        }
        let digest = KeyDigest::of(&key);
        if present_digests.contains(&digest.0) {
            report.sessions_present += 1;
            continue;
        }
        let extra_data = extra(s.extra_data.as_deref(), &what, report);
        let row = SessionRow {
            digest,
            userid: owner,
            expires_at,
            extra_data,
        };
        match chosen.get(&digest.0) {
            Some(earlier) if earlier.expires_at >= row.expires_at => duplicates += 1,
            Some(_) => {
                duplicates += 1;
                chosen.insert(digest.0, row);
            }
            None => {
                chosen.insert(digest.0, row);
            }
        }
    }
    if duplicates > 0 {
        report.left_out.push(format!(
            "{duplicates} session row(s) left out: the library held their key twice (the later \
             expiry is kept)"
        ));
    }
    let mut sessions: Vec<SessionRow> = chosen.into_values().collect();
    sessions.sort_by_key(|s| (s.userid, s.expires_at));
    plan.sessions = sessions;
    plan
}

impl Plan {
    /// Whether there is nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.sessions.is_empty()
    }

    /// The one-line summary.
    pub fn summary(&self, dry_run: bool) -> String {
        let r = &self.report;
        let users_left_out = r.library_users - self.users.len() - r.users_present;
        let rest = format!(
            "already present: {} users, {} sessions; left out: {users_left_out} users, {} expired \
             sessions (report lines: {})",
            r.users_present,
            r.sessions_present,
            r.sessions_expired,
            r.left_out.len() + r.unusable_passwords.len() + r.kept_as_pickle.len(),
        );
        if self.is_empty() {
            return format!("nothing to import, nothing changed; {rest}");
        }
        let verb = if dry_run { "would import" } else { "imported" };
        let tail = if dry_run {
            "; dry run: nothing was changed"
        } else {
            ""
        };
        format!(
            "{verb} {} users and {} sessions; {rest}{tail}",
            self.users.len(),
            self.sessions.len()
        )
    }

    /// The whole report, one line each.
    pub fn report_lines(&self) -> Vec<String> {
        let r = &self.report;
        let mut out = vec![format!(
            "read {} users and {} sessions of the library",
            r.library_users, r.library_sessions
        )];
        out.extend(r.left_out.iter().cloned());
        out.extend(r.unusable_passwords.iter().cloned());
        out.extend(r.kept_as_pickle.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(userid: i64, username: &str, email: &str) -> LibraryUser {
        LibraryUser {
            userid,
            username: Some(username.into()),
            email: Some(email.into()),
            salt: Some("00".repeat(16)),
            kpasswd: Some("11".repeat(64)),
            admin: false,
            extra_data: None,
        }
    }

    fn session(userid: i64, key: &str, expiration: f64) -> LibrarySession {
        LibrarySession {
            userid: Some(userid),
            key: Some(key.into()),
            expiration: Some(expiration),
            extra_data: None,
        }
    }

    #[test]
    fn duplicates_ignoring_case_go_to_the_lowest_userid_and_are_listed() {
        let users = vec![
            user(7, "Alice", "a2@example.com"),
            user(3, "alice", "a@example.com"),
            user(9, "bob", "A@EXAMPLE.COM"),
            user(10, " carol", "c@example.com"),
            user(11, "dave", "no-at-sign"),
        ];
        let p = plan(users, vec![], &[], &HashSet::new(), Utc::now());
        let ids: Vec<i64> = p.users.iter().map(|u| u.userid).collect();
        assert_eq!(ids, vec![3]);
        assert_eq!(p.report.left_out.len(), 4, "{:?}", p.report.left_out);
        assert!(p.report.left_out[0].starts_with("user #7 \"Alice\": left out, username"));
        assert!(p.report.left_out[1].contains("email"));
        assert!(p.users[0]
            .password_hash
            .starts_with("$pbkdf2-sha512$i=100000,l=64$"));
    }

    #[test]
    fn a_username_that_looks_like_another_is_left_out_like_a_duplicate() {
        let users = vec![
            user(4, "p\u{0430}ul", "p2@example.com"), // Cyrillic a
            user(2, "paul", "p@example.com"),
            user(5, "mary", "m@example.com"),
        ];
        let existing = [ExistingUser {
            userid: 1,
            username: "rnary".into(),
            email: "r@example.com".into(),
        }];
        let p = plan(users, vec![], &existing, &HashSet::new(), Utc::now());
        let ids: Vec<i64> = p.users.iter().map(|u| u.userid).collect();
        assert_eq!(ids, vec![2]);
        assert_eq!(p.report.left_out.len(), 2, "{:?}", p.report.left_out);
        assert!(p.report.left_out[0].contains("looks like user #2's"));
        assert!(p.report.left_out[1].contains("looks like user #1's"));
        assert_eq!(
            p.users[0].username_skeleton,
            validate::username_skeleton("paul")
        );
    }

    #[test]
    fn live_sessions_of_imported_users_come_over_as_digests_and_a_rerun_finds_them_present() {
        let now = Utc::now();
        let later = now.timestamp() as f64 + 3600.0;
        let key = "0123456789abcdef0123456789abcdef";
        let sessions = vec![
            session(1, key, later),
            session(1, "ffffffffffffffffffffffffffffffff", 1.0),
            session(2, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", later),
        ];
        let p = plan(
            vec![user(1, "a", "a@x")],
            sessions.clone(),
            &[],
            &HashSet::new(),
            now,
        );
        assert_eq!(p.sessions.len(), 1);
        assert!(p.sessions[0].digest == KeyDigest::of(key));
        assert_eq!(p.sessions[0].expires_at.timestamp(), later as i64);
        assert_eq!(p.report.sessions_expired, 1);
        assert_eq!(p.report.left_out.len(), 1, "the orphan session");
        assert!(!p.report.left_out[0].contains(key));

        let existing = [ExistingUser {
            userid: 1,
            username: "a".into(),
            email: "a@x".into(),
        }];
        let present: HashSet<[u8; 32]> = [KeyDigest::of(key).0].into();
        let again = plan(
            vec![user(1, "a", "a@x")],
            sessions,
            &existing,
            &present,
            now,
        );
        assert!(again.is_empty());
        assert_eq!(again.report.users_present, 1);
        assert_eq!(again.report.sessions_present, 1);
    }

    #[test]
    fn a_hash_the_library_did_not_write_never_verifies_and_is_listed() {
        let mut u = user(1, "a", "a@x");
        u.kpasswd = Some("not hex".into());
        let p = plan(vec![u], vec![], &[], &HashSet::new(), Utc::now());
        assert_eq!(p.users[0].password_hash, UNUSABLE_HASH);
        assert_eq!(p.report.unusable_passwords.len(), 1);
    }
}
