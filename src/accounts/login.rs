//! A login: the throttle admits the attempt before any hashing, the password is verified with
//! the same work whether or not the user exists, a hash made with other parameters is replaced,
//! and the session is opened only while the account still has the hash that was verified.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Error, Result, UserHandle};
use crate::domain::SessionKey;
use crate::sessions::OpenSession;
use crate::store::users::{self as users_store, UserRow};
use crate::telemetry::metrics::METRICS;
use crate::telemetry::{self, LoginRefusal};

/// A login request as the HTTP layer hands it over.
pub struct NewLogin {
    pub username: String,
    pub password: String,
    pub extra_data: Option<Value>,
    /// The client's address, for per-address throttling and the audit trail; kept with the
    /// session.
    pub client: Option<std::net::IpAddr>,
    /// The client's user agent, kept with the session (cut to a sane length by the HTTP layer).
    pub user_agent: Option<String>,
    /// "Remember me": the session slides by `session.remember_ttl`.
    pub remember: bool,
}

/// A successful login: the key is shown to the client exactly once.
pub struct LoginOutcome {
    pub key: SessionKey,
    pub userid: i64,
    pub admin: bool,
    pub expires_at: DateTime<Utc>,
}

impl UserHandle {
    /// Verifies a username and password and opens a session. Unknown users and wrong
    /// passwords cost the same hashing work and give the same answer; locked accounts and
    /// addresses are refused before any hashing; a hash made with other parameters than the
    /// configured ones is replaced.
    pub async fn login(&self, request: NewLogin) -> Result<LoginOutcome> {
        let core = &self.core;
        let now = core.clock.now();
        let (attempt, user): (_, Option<UserRow>) = {
            let mut db = core.db().await?;
            let reserved = core
                .guard
                .reserve(&mut db, &request.username, request.client, now)
                .await;
            if let Err(Error::Throttled { .. }) = &reserved {
                telemetry::login_refused(
                    LoginRefusal::Throttled,
                    request.client,
                    &request.username,
                );
            }
            let attempt = reserved?;
            (
                attempt,
                users_store::find_by_username(&db, &request.username).await?,
            )
        };
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let rehash_with = match &stored_hash {
            Some(h) if core.hasher.needs_rehash(h) => Some(request.password.clone()),
            _ => None,
        };
        let ok = match core.hasher.verify(request.password, stored_hash).await {
            Ok(ok) => ok,
            Err(e) => {
                core.guard.cancel(&core.db().await?, &attempt).await?;
                return Err(e.into());
            }
        };
        METRICS.login(ok && user.is_some());
        let db = core.db().await?;
        let user = match user {
            Some(u) if ok => u,
            other => {
                telemetry::login_refused(LoginRefusal::Failed, request.client, &request.username);
                let userid = other.map(|u| u.userid);
                let locked = core.guard.failed(&db, &attempt, now).await?;
                core.guard
                    .record(
                        &db,
                        now,
                        "login_failure",
                        userid,
                        Some(&request.username),
                        request.client,
                        None,
                    )
                    .await;
                if let Some(until) = locked {
                    let detail = serde_json::json!({ "locked_until": until });
                    core.guard
                        .record(
                            &db,
                            now,
                            "lockout",
                            userid,
                            Some(&request.username),
                            request.client,
                            Some(detail),
                        )
                        .await;
                }
                return Err(Error::InvalidCredentials);
            }
        };
        core.guard.succeeded(&db, &attempt).await?;
        drop(db);
        let mut verified_hash = user.password_hash.clone();
        if let Some(password) = rehash_with {
            match core.hasher.hash(password).await {
                Ok(new_hash) => {
                    let db = core.db().await?;
                    if users_store::replace_password_hash(
                        &db,
                        user.userid,
                        &user.password_hash,
                        &new_hash,
                    )
                    .await?
                    {
                        tracing::info!(
                            userid = user.userid,
                            "password rehashed with the configured parameters"
                        );
                        verified_hash = new_hash;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not rehash a password"),
            }
        }
        let (key, expires_at) = self
            .sessions
            .open(OpenSession {
                userid: user.userid,
                verified_hash,
                extra_data: request.extra_data,
                remember: request.remember,
                client: request.client,
                user_agent: request.user_agent,
            })
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let db = core.db().await?;
        core.guard
            .record(
                &db,
                now,
                "login_success",
                Some(user.userid),
                Some(&user.username),
                request.client,
                None,
            )
            .await;
        Ok(LoginOutcome {
            key,
            userid: user.userid,
            admin: user.admin,
            expires_at,
        })
    }
}
