//! The "Where am I signed in?" page, `GET/POST /sessions`: the signed-in user's own sessions
//! (as `/v1/me/sessions` lists them) with a button to end each other one and one to end all
//! others; its form posts are refused from other sites and without the page's form token.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::cookies;
use super::credentials::{session_key, KeySource};
use super::login_page::{escape, html_response, provenance, Provenance};
use super::AppState;
use crate::domain::keys::secrets_equal;
use crate::domain::KeyDigest;
use crate::sessions;
use crate::sessions::cache::CachedSession;
use crate::store::sessions::SessionRow;

const PAGE: &str = include_str!("sessions_page.html");

/// The most sessions the page shows; it says so when there are more.
pub const PAGE_LIMIT: usize = 100;

/// Where a visitor without a valid session is sent.
const LOGIN: &str = "/login?rd=%2Fsessions";

const CROSS_SITE: &str =
    "This form was sent from another site. Nothing was changed; use the buttons on this page.";
const STALE_FORM: &str =
    "This form is out of date (you signed in again meanwhile). Nothing was changed; try again.";

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    ended: Option<u64>,
}

#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    token: String,
    /// A session id, or `others` for every session but this one.
    #[serde(default)]
    end: String,
}

/// The signed-in visitor: their session, as checked, and its key.
struct Visitor<'a> {
    key: &'a str,
    source: KeySource,
    session: std::sync::Arc<CachedSession>,
}

/// The visitor's session, `Ok(None)` when there is no valid one, or the service failure.
async fn visitor<'a>(req: &'a HttpRequest, state: &AppState) -> Result<Option<Visitor<'a>>, ()> {
    let Some((key, source)) = session_key(req, &state.settings.session.cookie_name) else {
        return Ok(None);
    };
    let Some(digest) = KeyDigest::of_presented(key) else {
        return Ok(None);
    };
    match state.services.sessions.check_digest(digest).await {
        Ok(session) => Ok(Some(Visitor {
            key,
            source,
            session,
        })),
        Err(sessions::Error::NotFound | sessions::Error::Expired) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "the sessions page could not check a session");
            Err(())
        }
    }
}

/// The page's form token: derived from the session key (one-way, and distinct from the stored
/// key digest), so only a page that the session's holder loaded can carry it.
fn form_token(key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"pgusers sessions page form\0");
    h.update(key.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn to_login() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, LOGIN))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn message_page(status: StatusCode, text: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Where am I signed in?</title></head>\
         <body><p class=\"error\" role=\"alert\" id=\"message\">{}</p><p><a href=\"/sessions\">Back to your sessions</a></p></body></html>",
        escape(text)
    );
    html_response(status, html)
}

fn unavailable() -> HttpResponse {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is unavailable; please try again later.",
    )
}

fn time(t: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M")
    )
}

fn row(s: &SessionRow, this: i64, now: DateTime<Utc>) -> String {
    let expires = if s.expires_at <= now {
        format!(
            "<span class=\"expired\">expired {}</span>",
            time(s.expires_at)
        )
    } else {
        time(s.expires_at)
    };
    let address = s
        .client_addr
        .map(|a| escape(&a.to_string()))
        .unwrap_or_else(|| "unknown".into());
    let agent = s
        .user_agent
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| "unknown".into());
    let action = if s.session_id == this {
        "<span class=\"here\">this device</span>".to_string()
    } else {
        format!(
            "<button class=\"quiet\" type=\"submit\" name=\"end\" value=\"{id}\">End</button>",
            id = s.session_id
        )
    };
    format!(
        "        <tr id=\"session-{id}\"{here}><td>{created}</td><td>{seen}</td><td>{expires}</td>\
         <td>{address}</td><td class=\"agent\">{agent}</td><td>{action}</td></tr>",
        id = s.session_id,
        here = if s.session_id == this {
            " class=\"this-device\""
        } else {
            ""
        },
        created = time(s.created_at),
        seen = time(s.last_seen_at),
    )
}

fn render(
    visitor: &Visitor<'_>,
    rows: &[SessionRow],
    total: i64,
    ended: Option<u64>,
    now: DateTime<Utc>,
) -> String {
    let this = visitor.session.session_id;
    let mut body = String::new();
    for r in rows.iter().take(PAGE_LIMIT) {
        body.push_str(&row(r, this, now));
        body.push('\n');
    }
    let more = if total > rows.len() as i64 {
        format!(
            "<p class=\"more\" id=\"more\">Showing the first {PAGE_LIMIT} of {total} sessions; \
             \"End all other sessions\" ends them all.</p>"
        )
    } else {
        String::new()
    };
    let others = total - i64::from(rows.iter().any(|r| r.session_id == this));
    let end_others = if others > 0 {
        "<button id=\"end-others\" type=\"submit\" name=\"end\" value=\"others\">End all other sessions</button>"
    } else {
        "<p id=\"only-this\">You are signed in on this device only.</p>"
    };
    let message = match ended {
        Some(n) => format!(
            "<p class=\"note\" role=\"status\" id=\"message\">Ended {n} session{}.</p>",
            if n == 1 { "" } else { "s" }
        ),
        None => String::new(),
    };
    // What others wrote (the user agents, the username) goes in last, so that text in it which
    // looks like a placeholder stays as it is.
    PAGE.replace("{{token}}", &form_token(visitor.key))
        .replace("{{message}}", &message)
        .replace("{{more}}", &more)
        .replace("{{end_others}}", end_others)
        .replace("{{username}}", &escape(visitor.session.username()))
        .replace("{{rows}}", &body)
}

/// `GET /sessions`: the page, or a redirect to the login page without a valid session.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let visitor = match visitor(&req, &state).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_login(),
        Err(()) => return unavailable(),
    };
    let sessions = &state.services.sessions;
    let userid = visitor.session.userid;
    let listed = match sessions.list(userid, false, 0, PAGE_LIMIT as i64).await {
        Ok(rows) if rows.len() < PAGE_LIMIT => Ok((rows.len() as i64, rows)),
        Ok(rows) => sessions.count(userid).await.map(|total| (total, rows)),
        Err(e) => Err(e),
    };
    let (total, rows) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "the sessions page could not list sessions");
            return unavailable();
        }
    };
    let ended = serde_urlencoded::from_str::<PageQuery>(req.query_string())
        .ok()
        .and_then(|q| q.ended);
    let clock = &*state.services.core.clock;
    let mut response = html_response(
        StatusCode::OK,
        render(&visitor, &rows, total, ended, clock.now()),
    );
    if visitor.source == KeySource::Cookie {
        if let Some(c) = cookies::refreshed(
            &state.settings.session,
            visitor.key,
            &visitor.session,
            clock,
        ) {
            if let Ok(v) = header::HeaderValue::from_str(&c) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
    }
    response
}

/// `POST /sessions` with `end=<session id>` or `end=others`: ends them, then back to the page.
pub async fn end(req: HttpRequest, state: web::Data<AppState>, form: web::Bytes) -> HttpResponse {
    if provenance(&req) == Provenance::Elsewhere {
        return message_page(StatusCode::FORBIDDEN, CROSS_SITE);
    }
    let visitor = match visitor(&req, &state).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_login(),
        Err(()) => return unavailable(),
    };
    let form: EndForm = serde_urlencoded::from_bytes(&form).unwrap_or(EndForm {
        token: String::new(),
        end: String::new(),
    });
    if !secrets_equal(form.token.as_bytes(), form_token(visitor.key).as_bytes()) {
        return message_page(StatusCode::FORBIDDEN, STALE_FORM);
    }
    let me = &visitor.session;
    let sessions = &state.services.sessions;
    let outcome = if form.end == "others" {
        let except = KeyDigest::of_presented(visitor.key);
        sessions
            .kill_many(me.userid, false, except)
            .await
            .map(|killed| {
                (
                    killed,
                    json!({ "killed": killed, "by": "self" }),
                    "sessions_killed",
                )
            })
    } else if let Ok(id) = form.end.parse::<i64>() {
        sessions.kill_own(me.userid, id).await.map(|found| {
            (
                u64::from(found),
                json!({ "session_id": id, "by": "self" }),
                "session_killed",
            )
        })
    } else {
        return message_page(StatusCode::BAD_REQUEST, "Choose a session to end.");
    };
    let (ended, detail, kind) = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "the sessions page could not end sessions");
            return unavailable();
        }
    };
    if ended > 0 {
        super::audit::note(&state, &req, kind, Some(me.userid), Some(detail)).await;
    }
    let ended_own = form.end.parse::<i64>().ok() == Some(me.session_id) && ended > 0;
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if ended_own {
        // Ending this device's own session is signing out.
        response
            .insert_header((header::LOCATION, LOGIN))
            .insert_header((
                header::SET_COOKIE,
                cookies::clearing_cookie(&state.settings.session),
            ));
    } else {
        response.insert_header((header::LOCATION, format!("/sessions?ended={ended}")));
    }
    response.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_token_follows_the_key_and_is_not_its_digest() {
        let key = "some-session-key";
        assert_eq!(form_token(key), form_token(key));
        assert_ne!(form_token(key), form_token("another-key"));
        assert!(!hex::encode(KeyDigest::of(key).as_bytes()).contains(&form_token(key)));
        assert_eq!(form_token(key).len(), 32);
    }
}
