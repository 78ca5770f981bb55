//! The handlers' preamble as extractors: the caller ([`Admin`], [`SessionHolder`]), the path id
//! ([`UserId`], [`SessionId`]), the query ([`Query`]) and the JSON body ([`Json`]), reporting the
//! first failure in the order the API has always checked: the body is read (413 beyond
//! `server.max_body_bytes`), the caller authorised, the path id parsed, then the query or the body.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::body::{self, Body};
use super::credentials;
pub use super::credentials::{Admin, SessionHolder};
use super::AppState;
use crate::http::error::{ApiError, ApiResult};

/// The steps of a preamble, in the order their failures are reported.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Reading the body.
    Read,
    /// Authorising the caller.
    Caller,
    /// Parsing the path id.
    Path,
    /// Parsing the query or the body.
    Content,
}

/// The steps a request's extractors have still to finish.
///
/// actix runs a handler's extractors together and answers with the first failure that
/// *completes*: an instant one (a bad path id, a malformed body) would win over one that waits
/// (the caller's session looked up in the database), and the answer would depend on the cache.
/// So each extractor holds its outcome until every earlier step is done. All the extractors of
/// a handler are polled by one task, whose waker is kept while one of them waits.
///
/// actix creates a handler's extractors in the order of its arguments before polling any, and
/// every handler names its caller first: the caller extractor registers the steps, and the
/// path, query and body extractors after it take part. A handler without a caller (login, the
/// session check: the hot path) has nothing to order, and its body is read and parsed as one
/// plain future, with no bookkeeping.
#[derive(Default)]
struct Steps {
    pending: [Cell<usize>; 4],
    waiting: Cell<Option<Waker>>,
}

impl Steps {
    /// The request's steps, shared by its extractors.
    fn of(req: &HttpRequest) -> Rc<Self> {
        if let Some(steps) = req.extensions().get::<Rc<Self>>() {
            return Rc::clone(steps);
        }
        let steps = Rc::new(Self::default());
        req.extensions_mut().insert(Rc::clone(&steps));
        steps
    }

    /// The steps of a request whose caller is checked by an earlier extractor, if any.
    fn registered(req: &HttpRequest) -> Option<Rc<Self>> {
        req.extensions().get::<Rc<Self>>().cloned()
    }

    fn begin(&self, step: Step) {
        let n = &self.pending[step as usize];
        n.set(n.get().saturating_add(1));
    }

    /// Waits until every step before `step` is done, then counts one `step` done.
    async fn finish(&self, step: Step) {
        poll_fn(|cx| {
            if self.pending[..step as usize].iter().all(|n| n.get() == 0) {
                Poll::Ready(())
            } else {
                self.waiting.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        let n = &self.pending[step as usize];
        n.set(n.get().saturating_sub(1));
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }
}

type Extracted<T> = LocalBoxFuture<'static, ApiResult<T>>;

/// The outcome of `work`, reported as `step` of the request's preamble (in turn when a caller
/// is checked, at once otherwise).
fn in_turn<T: 'static>(
    req: &HttpRequest,
    step: Step,
    work: impl Future<Output = ApiResult<T>> + 'static,
) -> Extracted<T> {
    let steps = match step {
        Step::Caller => Steps::of(req),
        _ => match Steps::registered(req) {
            Some(steps) => steps,
            None => return Box::pin(work),
        },
    };
    steps.begin(step);
    Box::pin(async move {
        let outcome = work.await;
        steps.finish(step).await;
        outcome
    })
}

fn state(req: &HttpRequest) -> ApiResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal_msg("the application state is missing"))
}

/// The caller, checked by `check` (a lookup of their session, unless it is an API token).
fn caller<T: 'static, F>(
    req: &HttpRequest,
    check: fn(HttpRequest, web::Data<AppState>) -> F,
) -> Extracted<T>
where
    F: Future<Output = ApiResult<T>> + 'static,
{
    let request = req.clone();
    in_turn(req, Step::Caller, async move {
        let state = state(&request)?;
        check(request, state).await
    })
}

/// An API token or an admin user's session key, as a bearer credential only
/// ([`credentials::require_admin`]).
impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        caller(req, credentials::require_admin)
    }
}

/// The caller's own valid session, from the bearer credential or the cookie
/// ([`credentials::require_session`]).
impl FromRequest for SessionHolder {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        caller(req, credentials::require_session)
    }
}

/// A positive 64-bit id from the path segment `name`.
fn path_id<T: 'static>(req: &HttpRequest, name: &'static str, id: fn(i64) -> T) -> Extracted<T> {
    let outcome = req
        .match_info()
        .get(name)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(id)
        .ok_or_else(|| ApiError::bad_call(format!("{name} must be a positive integer")));
    in_turn(req, Step::Path, async move { outcome })
}

/// The `{userid}` of the path.
pub struct UserId(pub i64);

impl FromRequest for UserId {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        path_id(req, "userid", UserId)
    }
}

/// The `{session_id}` of the path.
pub struct SessionId(pub i64);

impl FromRequest for SessionId {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        path_id(req, "session_id", SessionId)
    }
}

/// The query string as `T`, parsed strictly ([`body::query`]).
///
/// Not `web::Query` with a `QueryConfig`: its failure could not wait for the caller's.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let outcome = body::query(req).map(Query);
        in_turn(req, Step::Content, async move { outcome })
    }
}

/// The body as a JSON document of type `T` ([`Body::json`]), read up to
/// `server.max_body_bytes` (413 beyond, before anything else is checked).
///
/// Not `web::Json` with a `JsonConfig`: its failure could not wait for the caller's, it wants a
/// JSON `Content-Type` (the API has never asked for one), and its empty-body failure is serde's.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(64 * 1024, |s| s.settings.server.max_body_bytes);
        let bytes = web::Bytes::from_request(req, payload);
        let read = async move {
            bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::bad_call("could not read the request body")
                }
            })
        };
        let Some(steps) = Steps::registered(req) else {
            return Box::pin(async move { Body(read.await?).json().map(Json) });
        };
        let read = in_turn(req, Step::Read, read);
        steps.begin(Step::Content);
        Box::pin(async move {
            // A read failure is reported as the read step's, a parse failure as the content's.
            let parsed = Body(read.await?).json().map(Json);
            steps.finish(Step::Content).await;
            parsed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// A step whose outcome takes `polls` polls to come, like a session looked up in the database.
    fn slow<T: 'static>(
        req: &HttpRequest,
        step: Step,
        polls: usize,
        outcome: ApiResult<T>,
    ) -> Extracted<T> {
        let left = Cell::new(polls);
        in_turn(req, step, async move {
            poll_fn(|cx| {
                if left.get() == 0 {
                    return Poll::Ready(());
                }
                left.set(left.get() - 1);
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            outcome
        })
    }

    /// A caller check whose outcome takes `POLLS` polls (a session looked up in the database).
    struct Caller<const POLLS: usize, const VALID: bool>;

    impl<const POLLS: usize, const VALID: bool> FromRequest for Caller<POLLS, VALID> {
        type Error = ApiError;
        type Future = Extracted<Self>;

        fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
            let outcome = if VALID {
                Ok(Self)
            } else {
                Err(ApiError::Unauthenticated)
            };
            slow(req, Step::Caller, POLLS, outcome)
        }
    }

    type SlowStranger = Caller<3, false>;
    type SlowHolder = Caller<3, true>;
    /// Refused at once (no credential).
    type Stranger = Caller<0, false>;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Key {
        key: String,
    }

    const BAD_BODY: &str = "{\"key\": 5}";
    const GOOD_BODY: &str = "{\"key\": \"k\"}";

    fn users(path: &str) -> TestRequest {
        TestRequest::with_uri(&format!("/v1/users/{path}")).param("userid", path.to_owned())
    }

    /// The failure's message that actix reports for a handler taking the extractors `T` (a
    /// tuple), on `/v1/users/{path}` with `body`.
    async fn failure<T: FromRequest>(path: &str, body: &'static str) -> String {
        let req = users(path).app_data(web::PayloadConfig::new(16));
        let (req, mut payload) = req.set_payload(body).to_http_parts();
        match T::from_request(&req, &mut payload).await {
            Ok(_) => "none".into(),
            Err(e) => {
                let e: actix_web::Error = e.into();
                e.to_string()
            }
        }
    }

    #[actix_web::test]
    async fn failures_are_reported_in_the_order_read_caller_path_content() {
        let stranger = "a valid credential is required";
        let bad_path = "userid must be a positive integer";
        // A slow refusal of the caller wins over an instant bad path or body.
        assert_eq!(failure::<(SlowStranger, UserId)>("x", "").await, stranger);
        let both = failure::<(SlowStranger, UserId, Json<Key>)>("7", BAD_BODY).await;
        assert_eq!(both, stranger);
        // Once the caller passes, the path comes before the body.
        let both = failure::<(SlowHolder, UserId, Json<Key>)>("0", BAD_BODY).await;
        assert_eq!(both, bad_path);
        let body = failure::<(SlowHolder, UserId, Json<Key>)>("7", BAD_BODY).await;
        assert!(body.starts_with("request body: "), "{body}");
        let fine = failure::<(SlowHolder, UserId, Json<Key>)>("7", GOOD_BODY).await;
        assert_eq!(fine, "none");
        // An oversized body comes first of all.
        let big = failure::<(Stranger, Json<Key>)>("7", "{\"key\": \"0123456789abcdef\"}").await;
        assert!(big.starts_with("the request body is larger than"), "{big}");
    }

    #[actix_web::test]
    async fn path_ids_are_positive_integers() {
        for (path, id) in [("7", Some(7)), ("0", None), ("-3", None), ("x", None)] {
            let (req, mut payload) = users(path).to_http_parts();
            match UserId::from_request(&req, &mut payload).await {
                Ok(UserId(n)) => assert_eq!(Some(n), id, "{path}"),
                Err(e) => {
                    assert_eq!(id, None, "{path}");
                    assert_eq!(e.to_string(), "userid must be a positive integer");
                }
            }
        }
    }

    #[actix_web::test]
    async fn without_a_caller_the_body_is_read_and_parsed_with_no_bookkeeping() {
        let (req, mut payload) = users("7").set_payload(GOOD_BODY).to_http_parts();
        assert!(Json::<Key>::from_request(&req, &mut payload).await.is_ok());
        assert!(
            Steps::registered(&req).is_none(),
            "the hot path registers nothing"
        );
        let (req, mut payload) = users("7").set_payload(BAD_BODY).to_http_parts();
        let Err(e) = Json::<Key>::from_request(&req, &mut payload).await else {
            panic!("a bad body is refused");
        };
        assert!(e.to_string().starts_with("request body: "), "{e}");
    }

    #[actix_web::test]
    async fn every_step_is_counted_done_after_a_full_extraction() {
        let (req, mut payload) = users("7").set_payload(GOOD_BODY).to_http_parts();
        let extracted = <(SlowHolder, UserId, Json<Key>)>::from_request(&req, &mut payload).await;
        assert!(extracted.is_ok());
        assert!(Steps::of(&req).pending.iter().all(|n| n.get() == 0));
    }
}
