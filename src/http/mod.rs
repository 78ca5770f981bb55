//! The HTTP API of `api.md`: routes, shared request plumbing and the JSON error envelope.

mod audit;
mod body;
mod client;
mod cookies;
mod credentials;
pub mod error;
mod extract;
mod forward_auth;
mod groups;
mod health;
mod login_page;
mod me;
mod observe;
mod paging;
pub mod requests;
mod sessions;
mod sessions_page;
pub mod tls;
mod users;
mod views;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpResponse};

pub use credentials::ApiTokens;

/// The request parsers, exposed for fuzzing: JSON bodies, credentials, redirect targets.
pub mod parse {
    pub use super::body::{query, Body};
    pub use super::credentials::{bearer, session_cookie, session_key};
    pub use super::login_page::safe_redirect;
}
pub use health::render_metrics;
pub use observe::observe;

use crate::accounts::Services;
use crate::config::Settings;
use crate::http::error::ApiError;

/// What every handler can reach: the service handles and the request-facing settings.
pub struct AppState {
    pub services: Services,
    pub api_tokens: ApiTokens,
    pub settings: Settings,
    pub identity_headers: IdentityHeaders,
}

/// The forward-auth response header names, parsed once.
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub user_id: HeaderName,
    pub email: HeaderName,
    pub admin: HeaderName,
    pub groups: HeaderName,
}

/// A `forward_auth.header_*` setting that is not a valid HTTP header name.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a valid header name")]
pub struct InvalidHeaderName(String);

impl IdentityHeaders {
    pub fn from_settings(settings: &Settings) -> Result<Self, InvalidHeaderName> {
        let f = &settings.forward_auth;
        // Validated, then kept as a static name: cloning it into every forward-auth answer is
        // then a copy, not a reference count shared by the workers. Five short strings, leaked
        // once per start (the names are not reloaded).
        let parse = |name: &str| {
            let valid = HeaderName::try_from(name).map_err(|_| InvalidHeaderName(name.into()))?;
            let text: &'static str = Box::leak(valid.as_str().to_owned().into_boxed_str());
            Ok(HeaderName::from_static(text))
        };
        Ok(Self {
            user: parse(&f.header_user)?,
            user_id: parse(&f.header_user_id)?,
            email: parse(&f.header_email)?,
            admin: parse(&f.header_admin)?,
            groups: parse(&f.header_groups)?,
        })
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint".into()))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::bad_call("method not allowed on this endpoint"))
}

/// Every route of the daemon.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| {
        web::resource(path.to_string())
            .name(path)
            .default_service(web::to(method_not_allowed))
    };
    // The hot paths come first: actix tries resources in order, and each path with a `{segment}`
    // costs a regex match (perf showed ~8 % of a forward-auth request in regex_lite when
    // `/v1/auth` came after the `/v1/users/{userid}` family).
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(
            web::resource("/v1/auth")
                .name("/v1/auth")
                .route(web::route().to(forward_auth::any_user)),
        )
        .service(
            web::resource("/v1/auth/admin")
                .name("/v1/auth/admin")
                .route(web::route().to(forward_auth::admin_only)),
        )
        .service(resource("/v1/sessions/check").route(web::post().to(sessions::check)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(
            resource("/v1/users")
                .route(web::post().to(users::create))
                .route(web::get().to(users::find_or_list)),
        )
        .service(
            resource("/v1/users/{userid}")
                .route(web::get().to(users::get))
                .route(web::patch().to(users::modify))
                .route(web::delete().to(users::delete)),
        )
        .service(
            resource("/v1/users/{userid}/password").route(web::put().to(users::change_password)),
        )
        .service(
            resource("/v1/users/{userid}/admin")
                .route(web::get().to(users::get_admin))
                .route(web::put().to(users::set_admin)),
        )
        .service(
            resource("/v1/users/{userid}/groups")
                .route(web::get().to(groups::of_user))
                .route(web::put().to(groups::set_of_user)),
        )
        .service(resource("/v1/groups").route(web::get().to(groups::list)))
        .service(resource("/v1/groups/{name}").route(web::get().to(groups::members)))
        .service(resource("/v1/users/{userid}/lock").route(web::delete().to(audit::unlock)))
        .service(resource("/v1/audit").route(web::get().to(audit::list)))
        .service(resource("/v1/login").route(web::post().to(sessions::login)))
        .service(resource("/v1/logout").route(web::post().to(sessions::logout)))
        .service(
            resource("/v1/sessions")
                .route(web::get().to(sessions::list))
                .route(web::delete().to(sessions::kill_many)),
        )
        .service(resource("/v1/sessions/{session_id}").route(web::delete().to(sessions::kill_one)))
        .service(resource("/v1/settings").route(web::get().to(sessions::get_settings)))
        .service(
            resource("/v1/settings/session_ttl")
                .route(web::put().to(sessions::set_ttl))
                .route(web::delete().to(sessions::clear_ttl)),
        )
        .service(resource("/v1/me").route(web::get().to(me::get)))
        .service(resource("/v1/me/password").route(web::put().to(me::change_password)))
        .service(
            resource("/v1/me/sessions")
                .route(web::get().to(me::list_sessions))
                .route(web::delete().to(me::kill_other_sessions)),
        )
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/v1/openapi.json").route(web::get().to(health::openapi)))
        .service(
            resource("/login")
                .route(web::get().to(login_page::show))
                .route(web::post().to(login_page::submit)),
        )
        .service(
            resource("/logout")
                .route(web::get().to(login_page::logout_link))
                .route(web::post().to(login_page::logout)),
        )
        .service(
            resource("/sessions")
                .route(web::get().to(sessions_page::show))
                .route(web::post().to(sessions_page::end)),
        )
        .default_service(web::to(not_found));
}
