//! The console's routes and how they are served: HTTPS (rustls) with a bounded number of
//! connections and timeouts, security headers on every response, a session and a role checked
//! by every route but the login and the static files, a CSRF token checked on every POST, and
//! bounded request bodies.
//!
//! Routes (viewer: may look; admin: may also act):
//!
//! ```text
//! GET  /login, POST /login, POST /logout          anyone / session
//! GET  /                 live view, door state     viewer
//! GET  /api/status       the door's status JSON    viewer
//! GET  /api/events       audit lines (SSE)         viewer
//! GET  /api/live         newest frame's faces      viewer
//! GET  /live.jpg         newest frame              viewer
//! GET  /picture/SEQ      a decision picture (PNG)  viewer
//! GET  /audit, /audit.csv                          viewer
//! POST /door/unlock, /door/lockdown                admin
//! GET  /people, /people/ID (read-only for viewers) viewer
//! GET  /people/new                                 admin
//! POST /people/new (door camera), /people/upload (photos), /people/ID/rename, /people/ID/remove,
//!      /people/ID/policy, /people/ID/credential    admin
//! GET  /review; POST /review/enrol, /review/add, /review/dismiss   admin
//! GET  /static/console.js, /static/console.css    anyone
//! ```

use super::auth::{self, RateLimit, Session, Sessions, COOKIE};
use super::door::{AddPerson, Door, Frame, NewFace};
use super::faces::{Checked, Faces};
use super::forms::{self, Form};
use super::pages::{self, AuditFilter, AuditRow, PersonRow};
use super::users::{Role, Users};
use crate::config::Config;
use crate::door::control_api::client::{ClientError, DoorClient};
use crate::people::gallery::Gallery;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Multipart, Path, Query, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// The largest form body (login, rename, review actions).
pub const MAX_FORM_BODY: usize = forms::MAX_FORM;
/// The largest upload (photos of a new person, in all).
pub const MAX_UPLOAD: usize = 8 << 20;
/// Photos taken per upload.
pub const MAX_PHOTOS: usize = 5;
/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Event streams (SSE) at once (all fed by one connection to the door).
pub const MAX_STREAMS: usize = 32;
/// Requests to the door at once, besides the shared `events` and `view` connections.
pub const DOOR_REQUESTS: usize = 3;
/// Events kept for a browser that is slow to take them.
const EVENT_BACKLOG: usize = 256;
/// Audit lines a page.
pub const AUDIT_PAGE: usize = 100;
/// Lines a CSV export holds at most.
pub const MAX_CSV_LINES: usize = 100_000;
/// Bytes of audit log read for one page or export (the newest files first).
const MAX_AUDIT_READ: u64 = 64 << 20;
/// Unknown-face pictures grouped on the review page (the newest).
pub const MAX_REVIEW: usize = 200;
/// Faces sent in one `people add` (the door takes 1 to 10).
const MAX_FACES: usize = 10;
/// Door-camera pictures taken for an enrolment, and the pause between them.
const SNAPSHOTS: usize = 5;
const SNAPSHOT_GAP: Duration = Duration::from_millis(450);
/// How long the events connection may be quiet before the console checks for listeners.
const EVENTS_QUIET: Duration = Duration::from_secs(30);
/// The live view stops watching the door this long after the last browser asked.
const LIVE_LINGER: Duration = Duration::from_secs(10);

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CONSOLE_JS: &str = include_str!("static/console.js");
const CONSOLE_CSS: &str = include_str!("static/console.css");

/// The login form's cookie (its token is also in the form).
pub const LOGIN_COOKIE: &str = "__Host-facegate-login";

/// The client's address, put on each request by the server loop (the login rate limit's key).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The users file, re-read when it changes (`facegate console user ...` while running).
struct UsersCache {
    users: Users,
    stamp: Option<(SystemTime, u64)>,
    error: Option<String>,
}

/// The newest live-view frame and whether a thread is watching the door.
#[derive(Default)]
struct Live {
    frame: Mutex<Option<Frame>>,
    error: Mutex<Option<String>>,
    wanted: Mutex<Option<Instant>>,
    running: AtomicBool,
}

/// The door's events, shared by every browser that follows them.
struct EventHub {
    tx: tokio::sync::broadcast::Sender<String>,
    running: AtomicBool,
}

/// Everything the routes share.
pub struct App {
    config: Config,
    users_path: PathBuf,
    users: Mutex<UsersCache>,
    sessions: Sessions,
    limits: RateLimit,
    door: Option<Door>,
    faces: Arc<Faces>,
    live: Arc<Live>,
    streams: Arc<Semaphore>,
    events: Arc<EventHub>,
    door_slots: Semaphore,
    hashing: Semaphore,
    embeddings: Mutex<HashMap<u64, crate::Embedding>>,
}

impl App {
    /// The console for the door `config` describes, showing `operator_key` to the door.
    pub fn new(config: Config, operator_key: Option<String>) -> Arc<Self> {
        let door = config.control.socket().map(|s| Door::new(s, operator_key));
        Arc::new(Self {
            users_path: config.console.users.clone(),
            users: Mutex::new(UsersCache {
                users: Users::default(),
                stamp: None,
                error: None,
            }),
            sessions: Sessions::default(),
            limits: RateLimit::default(),
            door,
            faces: Arc::new(Faces::new(&config)),
            live: Arc::new(Live::default()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            events: Arc::new(EventHub {
                tx: tokio::sync::broadcast::channel(EVENT_BACKLOG).0,
                running: AtomicBool::new(false),
            }),
            door_slots: Semaphore::new(DOOR_REQUESTS),
            hashing: Semaphore::new(2),
            embeddings: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The accounts as the file holds them now (re-read when its time or size changed).
    fn users(&self) -> Users {
        let mut cache = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = std::fs::metadata(&self.users_path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp != cache.stamp || cache.stamp.is_none() {
            match Users::load(&self.users_path) {
                Ok(u) => {
                    cache.users = u;
                    cache.error = None;
                }
                Err(e) => {
                    // Nobody logs in with a broken file (rather than with a stale one).
                    if cache.error.is_none() {
                        tracing::error!("{e}");
                    }
                    cache.users = Users::default();
                    cache.error = Some(e.to_string());
                }
            }
            cache.stamp = stamp;
        }
        cache.users.clone()
    }

    /// The session of the request's cookie, checked against the accounts as they are now (a
    /// removed account's sessions end; a changed role applies at once).
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| forms::cookie(h, COOKIE))?;
        let mut s = self.sessions.get(token)?;
        match self.users().get(&s.user) {
            Some(u) => {
                s.role = u.role;
                Some(s)
            }
            None => {
                self.sessions.end_user(&s.user);
                None
            }
        }
    }

    fn door(&self) -> Result<Door, String> {
        self.door
            .clone()
            .ok_or_else(|| "the door has no control API ([control] socket is empty)".to_owned())
    }
}

/// Runs `f` with a connection to the door (one, closed after) on a blocking thread, at most
/// [`DOOR_REQUESTS`] at once (the door serves 8 connections in all; a page of pictures must
/// not take them all).
async fn with_door<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut DoorClient) -> Result<T, ClientError> + Send + 'static,
) -> Result<T, String> {
    let door = app.door()?;
    let _slot = app.door_slots.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        door.connect()
            .and_then(|mut c| f(&mut c))
            .map_err(|e| super::door::shown(&e))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A logged-in user (any role).
pub struct Viewer(pub Session);
/// A logged-in admin.
pub struct Admin(pub Session);

/// No session: a page asked for with GET goes to the login page; anything else is 401.
fn unauthenticated(parts: &Parts) -> Response {
    let path = parts.uri.path();
    if parts.method == Method::GET && !path.starts_with("/api/") {
        Redirect::to("/login").into_response()
    } else {
        status_page(StatusCode::UNAUTHORIZED, "log in first")
    }
}

impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        app.session(&parts.headers)
            .map(Viewer)
            .ok_or_else(|| unauthenticated(parts))
    }
}

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        match app.session(&parts.headers) {
            Some(s) if s.role == Role::Admin => Ok(Admin(s)),
            Some(_) => Err(status_page(StatusCode::FORBIDDEN, "for admins only")),
            None => Err(unauthenticated(parts)),
        }
    }
}

fn status_page(code: StatusCode, text: &str) -> Response {
    (code, Html(pages::error(code.as_u16(), text).into_string())).into_response()
}

/// The form of a POST, refused unless it carries the session's CSRF token.
fn checked_form(s: &Session, body: &[u8]) -> Result<Form, Response> {
    let form = forms::parse_form(body)
        .map_err(|e| status_page(StatusCode::BAD_REQUEST, &e.to_string()))?;
    csrf_ok(s, form.get("csrf"))?;
    Ok(form)
}

fn csrf_ok(s: &Session, token: Option<&str>) -> Result<(), Response> {
    match token {
        Some(t) if auth::same(t, &s.csrf) => Ok(()),
        _ => Err(status_page(
            StatusCode::FORBIDDEN,
            "the form is out of date: reload the page",
        )),
    }
}

/// Who asks, as the door's audit log records it.
fn by(s: &Session) -> String {
    format!("{}@console", s.user)
}

/// The router (every route, the headers, the body limits).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(live_page))
        .route("/api/status", get(api_status))
        .route("/api/events", get(api_events))
        .route("/api/live", get(api_live))
        .route("/live.jpg", get(live_jpg))
        .route("/picture/{seq}", get(picture))
        .route("/door/unlock", post(door_unlock))
        .route("/door/lockdown", post(door_lockdown))
        .route("/people", get(people_page))
        .route("/people/new", get(new_person_page).post(enrol_from_camera))
        .route(
            "/people/upload",
            post(enrol_from_photos).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/people/{id}", get(person_page))
        .route("/people/{id}/rename", post(rename))
        .route("/people/{id}/remove", post(remove))
        .route("/people/{id}/policy", post(set_policy))
        .route("/people/{id}/credential", post(set_credential))
        .route("/audit", get(audit_page))
        .route("/audit.csv", get(audit_csv))
        .route("/review", get(review_page))
        .route("/review/enrol", post(review_enrol))
        .route("/review/add", post(review_add))
        .route("/review/dismiss", post(review_dismiss))
        .route("/static/console.js", get(static_js))
        .route("/static/console.css", get(static_css))
        .fallback(|| async { status_page(StatusCode::NOT_FOUND, "no such page") })
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// The headers every response carries.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-frame-options", "DENY");
    res
}

async fn static_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CONSOLE_JS,
    )
        .into_response()
}

async fn static_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CONSOLE_CSS,
    )
        .into_response()
}

async fn login_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.session(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    // The login form's own token, in a cookie and in the form (double submit): another site
    // cannot log a browser in to an account of its choosing.
    let Ok(token) = auth::random_hex(32) else {
        return status_page(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let cookie =
        format!("{LOGIN_COOKIE}={token}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600");
    (
        [(header::SET_COOKIE, cookie)],
        Html(pages::login(None, &token).into_string()),
    )
        .into_response()
}

/// The value of cookie `name` in the request.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| forms::cookie(h, name))
}

/// The client's IP address as text ("unknown" without one: in-process tests).
struct Client(String);

impl FromRequestParts<Arc<App>> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &Arc<App>) -> Result<Self, Self::Rejection> {
        Ok(Client(parts.extensions.get::<ClientAddr>().map_or_else(
            || "unknown".to_owned(),
            |a| a.0.ip().to_string(),
        )))
    }
}

async fn login(
    State(app): State<Arc<App>>,
    Client(addr): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = forms::parse_form(&body) else {
        return status_page(StatusCode::BAD_REQUEST, "the form is not valid");
    };
    let token = match (form.get("login"), cookie_value(&headers, LOGIN_COOKIE)) {
        (Some(f), Some(c)) if f.len() == 64 && auth::same(f, c) => f.to_owned(),
        _ => {
            return status_page(
                StatusCode::FORBIDDEN,
                "the login form is out of date: reload the page",
            )
        }
    };
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    if !app.limits.allowed(&name, &addr) {
        tracing::warn!(
            "login refused (too many failures) for {} from {addr}",
            super::clean(&name)
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "300")],
            Html(
                pages::login(
                    Some("Too many failed logins: try again in a few minutes."),
                    &token,
                )
                .into_string(),
            ),
        )
            .into_response();
    }
    let Ok(_permit) = app.hashing.acquire().await else {
        return status_page(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let users = app.users();
    let checked = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || users.check(&name, &password).map(|u| u.role)).await
    };
    match checked {
        Ok(Some(role)) => {
            app.limits.succeeded(&name);
            let Ok(token) = app.sessions.start(&name, role) else {
                return status_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no session could be made",
                );
            };
            tracing::info!("{name} logged in from {addr}");
            let cookie = format!("{COOKIE}={token}; Secure; HttpOnly; SameSite=Strict; Path=/");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/".to_owned()),
                    (header::SET_COOKIE, cookie),
                ],
            )
                .into_response()
        }
        _ => {
            app.limits.failed(&name, &addr);
            tracing::warn!("failed login for {} from {addr}", super::clean(&name));
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some("Wrong name or password."), &token).into_string()),
            )
                .into_response()
        }
    }
}

async fn logout(
    State(app): State<Arc<App>>,
    Viewer(s): Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = checked_form(&s, &body) {
        return r;
    }
    if let Some(token) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| forms::cookie(h, COOKIE))
    {
        app.sessions.end(token);
    }
    let cookie = format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

async fn live_page(State(app): State<Arc<App>>, Viewer(s): Viewer) -> Response {
    let status = with_door(&app, |d| d.request("status")).await;
    Html(pages::live(&s, status).into_string()).into_response()
}

async fn api_status(State(app): State<Arc<App>>, Viewer(_): Viewer) -> Response {
    match with_door(&app, |d| d.request("status")).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

async fn api_events(State(app): State<Arc<App>>, Viewer(_): Viewer) -> Response {
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return status_page(StatusCode::SERVICE_UNAVAILABLE, "too many event streams");
    };
    let rx = app.events.tx.subscribe();
    follow_events(&app);
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx);
    // A browser that falls behind misses lines (it is told nothing: the audit page has them).
    let stream = tokio_stream::StreamExt::filter_map(stream, move |line| {
        let _held = &permit;
        line.ok()
            .map(|l| Ok::<_, std::convert::Infallible>(SseEvent::default().data(l)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Follows the door's events on one connection for every browser that listens (the door
/// serves few connections); stops once nobody listens.
fn follow_events(app: &Arc<App>) {
    let hub = app.events.clone();
    if hub.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let door = app.door();
    std::thread::spawn(move || loop {
        let listening = || hub.tx.receiver_count() > 0;
        let result = match &door {
            // Quiet for a while: the callback is asked whether anyone still listens.
            Ok(door) => door
                .connect()
                .and_then(|c| {
                    c.events(EVENTS_QUIET, |line| {
                        if !line.is_empty() {
                            let _ = hub.tx.send(line.to_owned());
                        }
                        listening()
                    })
                })
                .map_err(|e| super::door::shown(&e)),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = result {
            let _ = hub.tx.send(serde_json::json!({ "error": e }).to_string());
            // Not again at once: the door may be restarting.
            std::thread::sleep(Duration::from_secs(5));
        }
        hub.running.store(false, Ordering::SeqCst);
        // Someone came while this thread was leaving: go on for them.
        if !listening() || hub.running.swap(true, Ordering::SeqCst) {
            return;
        }
    });
}

/// Asks for the live view: starts watching the door if nobody does.
fn want_live(app: &Arc<App>) {
    *app.live.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    if app.live.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(door) = app.door() else {
        *app.live.error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some("the door has no control API".into());
        app.live.running.store(false, Ordering::SeqCst);
        return;
    };
    let live = app.live.clone();
    std::thread::spawn(move || {
        let wanted = || {
            live.wanted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| t.elapsed() < LIVE_LINGER)
        };
        let result = door
            .connect()
            .and_then(DoorClient::view)
            .and_then(|frames| {
                for frame in frames {
                    *live.frame.lock().unwrap_or_else(|e| e.into_inner()) = Some(Frame::of(frame?));
                    *live.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    if !wanted() {
                        break;
                    }
                }
                Ok(())
            });
        if let Err(e) = result {
            *live.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(super::door::shown(&e));
            // Not again at once: the browsers ask 3 times a second.
            std::thread::sleep(Duration::from_secs(2));
        }
        *live.frame.lock().unwrap_or_else(|e| e.into_inner()) = None;
        live.running.store(false, Ordering::SeqCst);
    });
}

async fn api_live(State(app): State<Arc<App>>, Viewer(_): Viewer) -> Response {
    want_live(&app);
    let frame = app
        .live
        .frame
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|f| f.json.clone());
    let error = app
        .live
        .error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let frame: serde_json::Value = frame
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or(serde_json::Value::Null);
    axum::Json(serde_json::json!({ "frame": frame, "error": error })).into_response()
}

async fn live_jpg(State(app): State<Arc<App>>, Viewer(_): Viewer) -> Response {
    want_live(&app);
    let jpeg = app
        .live
        .frame
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|f| f.jpeg.clone());
    match jpeg {
        Some(j) => ([(header::CONTENT_TYPE, "image/jpeg")], j).into_response(),
        None => status_page(StatusCode::SERVICE_UNAVAILABLE, "no frame yet"),
    }
}

async fn picture(
    State(app): State<Arc<App>>,
    Viewer(_): Viewer,
    Path(seq): Path<String>,
) -> Response {
    let Some(seq) = forms::seq(&seq) else {
        return status_page(StatusCode::BAD_REQUEST, "a picture is named by its number");
    };
    match with_door(&app, move |d| d.picture(seq)).await {
        Ok(png) if png.starts_with(b"\x89PNG\r\n\x1a\n") => {
            ([(header::CONTENT_TYPE, "image/png")], png).into_response()
        }
        Ok(_) => status_page(StatusCode::BAD_GATEWAY, "not a picture"),
        Err(_) => status_page(StatusCode::NOT_FOUND, "no such picture"),
    }
}

/// A door action's outcome as a page.
fn outcome(s: &Session, title: &str, result: Result<String, String>, back: &str) -> Response {
    let (code, line) = match result {
        Ok(a) => (StatusCode::OK, format!("The door answered: {a}")),
        Err(e) => (StatusCode::BAD_GATEWAY, e),
    };
    (
        code,
        Html(pages::message(Some(s), title, &[line], back).into_string()),
    )
        .into_response()
}

async fn door_unlock(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    if let Err(r) = checked_form(&s, &body) {
        return r;
    }
    let who = by(&s);
    let r = with_door(&app, move |d| d.unlock(&who)).await;
    outcome(&s, "Unlock", r, "/")
}

async fn door_lockdown(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    let form = match checked_form(&s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let on = match form.get("state") {
        Some("on") => true,
        Some("off") => false,
        _ => return status_page(StatusCode::BAD_REQUEST, "state is on or off"),
    };
    let who = by(&s);
    let r = with_door(&app, move |d| d.lockdown(on, &who)).await;
    outcome(&s, "Lockdown", r, "/")
}

/// The gallery as the door has it (read-only), or why not.
async fn gallery(app: &Arc<App>) -> Result<Option<Gallery>, String> {
    let path = app.config.gallery.path.clone();
    tokio::task::spawn_blocking(move || Gallery::load_any_model(&path).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

fn rows(g: &Gallery) -> Vec<PersonRow> {
    g.people
        .iter()
        .map(|p| PersonRow {
            id: p.id.clone(),
            name: p.name.clone(),
            faces: p.enrolments.len(),
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn people_page(
    State(app): State<Arc<App>>,
    Viewer(s): Viewer,
    Query(search): Query<Search>,
) -> Response {
    let q: String = search.q.trim().chars().take(100).collect();
    let (all, error) = match gallery(&app).await {
        Ok(g) => (g.as_ref().map(rows).unwrap_or_default(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let needle = q.to_lowercase();
    let shown: Vec<PersonRow> = all
        .iter()
        .filter(|p| {
            needle.is_empty()
                || p.name.to_lowercase().contains(&needle)
                || p.id.to_lowercase().contains(&needle)
        })
        .take(1000)
        .map(|p| PersonRow {
            id: p.id.clone(),
            name: p.name.clone(),
            faces: p.faces,
        })
        .collect();
    Html(pages::people(&s, &q, &shown, all.len(), error.as_deref()).into_string()).into_response()
}

/// One person: read-only for a viewer (their card's number left out), with the forms for an
/// admin.
async fn person_page(
    State(app): State<Arc<App>>,
    Viewer(s): Viewer,
    Path(id): Path<String>,
) -> Response {
    if crate::people::gallery::validate_id(&id).is_err() {
        return status_page(StatusCode::NOT_FOUND, "no such person");
    }
    let g = match gallery(&app).await {
        Ok(g) => g,
        Err(e) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let Some(p) = g.as_ref().and_then(|g| g.get(&id)) else {
        return status_page(StatusCode::NOT_FOUND, "no such person");
    };
    let row = PersonRow {
        id: p.id.clone(),
        name: p.name.clone(),
        faces: p.enrolments.len(),
    };
    let enrolled: Vec<String> = p
        .enrolments
        .iter()
        .map(|e| format!("{} ({})", e.enrolled_at, e.source))
        .collect();
    let access = &app.config.access;
    let now = access.zone().map(|z| access.local(&z, SystemTime::now()));
    let verdict = match now {
        Ok(now) => match p.policy.check(now) {
            Ok(()) => format!("allowed now ({now} site time)"),
            Err(r) => format!("refused now: {} ({now} site time)", r.as_str()),
        },
        Err(e) => e,
    };
    let access = pages::PersonAccess {
        policy: &p.policy,
        credential: p.credential,
        verdict,
    };
    Html(pages::person(&s, &row, &enrolled, &access).into_string()).into_response()
}

/// The preamble of every POST about one person: the form with the session's CSRF token, and
/// an id of the gallery's form (else 404: nothing from the path reaches the door unchecked).
fn person_form(s: &Session, id: &str, body: &[u8]) -> Result<Form, Response> {
    let form = checked_form(s, body)?;
    if crate::people::gallery::validate_id(id).is_err() {
        return Err(status_page(StatusCode::NOT_FOUND, "no such person"));
    }
    Ok(form)
}

async fn rename(
    State(app): State<Arc<App>>,
    Admin(s): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match person_form(&s, &id, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(name) = form
        .get("name")
        .and_then(forms::display_name)
        .map(str::to_owned)
    else {
        return status_page(StatusCode::BAD_REQUEST, "a name has 1 to 100 characters");
    };
    let who = by(&s);
    let back = format!("/people/{id}");
    let r = with_door(&app, move |d| d.rename(&id, &name, &who)).await;
    outcome(&s, "Rename", r, &back)
}

async fn remove(
    State(app): State<Arc<App>>,
    Admin(s): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match person_form(&s, &id, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if form.get("confirm") != Some("yes") {
        return status_page(StatusCode::BAD_REQUEST, "confirm the removal");
    }
    let who = by(&s);
    let r = with_door(&app, move |d| d.remove_person(&id, &who)).await;
    outcome(&s, "Remove", r, "/people")
}

/// A refused form as a page that says why, with a link back to the person.
fn refused(s: &Session, title: &str, why: String, back: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(pages::message(Some(s), title, &[why], back).into_string()),
    )
        .into_response()
}

async fn set_policy(
    State(app): State<Arc<App>>,
    Admin(s): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match person_form(&s, &id, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let back = format!("/people/{id}");
    // Checked here for a clear message at once; the door checks it again with the same code.
    let request = match forms::policy(&form) {
        Ok(r) => r,
        Err(e) => return refused(&s, "Access", e, &back),
    };
    let who = by(&s);
    let r = with_door(&app, move |d| d.set_policy(&id, &request, &who)).await;
    outcome(&s, "Access", r, &back)
}

async fn set_credential(
    State(app): State<Arc<App>>,
    Admin(s): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match person_form(&s, &id, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let back = format!("/people/{id}");
    let credential = match forms::credential(&form) {
        Ok(c) => c,
        Err(e) => return refused(&s, "Card", e, &back),
    };
    let who = by(&s);
    let r = with_door(&app, move |d| d.set_credential(&id, credential, &who)).await;
    outcome(&s, "Card", r, &back)
}

async fn new_person_page(State(app): State<Arc<App>>, Admin(s): Admin) -> Response {
    let people = gallery(&app)
        .await
        .ok()
        .flatten()
        .map(|g| rows(&g))
        .unwrap_or_default();
    Html(pages::new_person(&s, &people).into_string()).into_response()
}

/// The name and target of an enrolment form: a new person (a name), or an existing id.
fn target(
    form_name: Option<&str>,
    form_id: Option<&str>,
    g: Option<&Gallery>,
) -> Result<(String, Option<String>), String> {
    match form_id.filter(|i| !i.is_empty()) {
        Some(id) => {
            let p = g
                .and_then(|g| g.get(id))
                .ok_or_else(|| "no such person".to_owned())?;
            Ok((p.name.clone(), Some(p.id.clone())))
        }
        None => form_name
            .and_then(forms::display_name)
            .map(|n| (n.to_owned(), None))
            .ok_or_else(|| "give a name (1 to 100 characters) or choose a person".to_owned()),
    }
}

/// Checks the images and, when at least one face is good, asks the door to add them.
async fn enrol_images(
    app: &Arc<App>,
    s: &Session,
    images: Vec<(String, Vec<u8>)>,
    name: String,
    id: Option<String>,
    force: bool,
) -> Response {
    let faces = app.faces.clone();
    let checked: Vec<Checked> =
        match tokio::task::spawn_blocking(move || faces.check(&images)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
            Err(e) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    let good: Vec<NewFace> = checked
        .iter()
        .filter_map(|c| c.outcome.as_ref().ok())
        .take(MAX_FACES)
        .map(|f| NewFace {
            embedding: f.embedding.clone(),
            crop_png: f.crop_png_b64.clone(),
        })
        .collect();
    let answer = if good.is_empty() {
        Err("No picture was good enough: nobody was enrolled. See why below.".to_owned())
    } else {
        let request = AddPerson {
            name,
            id,
            faces: good,
            force,
            from_pictures: Vec::new(),
        };
        let who = by(s);
        with_door(app, move |d| d.add_person(&request, &who)).await
    };
    let (answer, added) = match answer {
        Ok(id) => (String::new(), Some(id)),
        Err(e) => (e, None),
    };
    Html(pages::enrolled(s, &checked, &answer, added.as_deref()).into_string()).into_response()
}

async fn enrol_from_camera(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    let form = match checked_form(&s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let g = gallery(&app).await.ok().flatten();
    let (name, id) = match target(form.get("name"), form.get("id"), g.as_ref()) {
        Ok(t) => t,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, &e),
    };
    let force = form.get("force") == Some("yes");
    let mut images = Vec::new();
    let mut notes = Vec::new();
    for i in 0..SNAPSHOTS {
        if i > 0 {
            tokio::time::sleep(SNAPSHOT_GAP).await;
        }
        match with_door(&app, |d| d.snapshot()).await {
            Ok(jpeg) => images.push((format!("door camera {}", i + 1), jpeg)),
            Err(e) => notes.push(e),
        }
    }
    if images.is_empty() {
        return (
            StatusCode::BAD_GATEWAY,
            Html(pages::message(Some(&s), "Enrolment", &notes, "/people/new").into_string()),
        )
            .into_response();
    }
    enrol_images(&app, &s, images, name, id, force).await
}

async fn enrol_from_photos(
    State(app): State<Arc<App>>,
    Admin(s): Admin,
    mut multipart: Multipart,
) -> Response {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut photos: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return status_page(e.status(), "the upload is not valid"),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "photo" {
            let label = field
                .file_name()
                .map(|n| super::clean(n).chars().take(80).collect())
                .unwrap_or_else(|| "photo".to_owned());
            if photos.len() >= MAX_PHOTOS {
                return status_page(StatusCode::BAD_REQUEST, "at most 5 photos");
            }
            match field.bytes().await {
                Ok(b) if !b.is_empty() => photos.push((label, b.to_vec())),
                Ok(_) => {}
                Err(e) => return status_page(e.status(), "the upload is not valid"),
            }
        } else {
            if fields.len() >= 16 {
                return status_page(StatusCode::BAD_REQUEST, "too many fields");
            }
            match field.text().await {
                Ok(t) if t.len() <= 1024 => fields.push((name, t)),
                Ok(_) => return status_page(StatusCode::BAD_REQUEST, "a field is too long"),
                Err(e) => return status_page(e.status(), "the upload is not valid"),
            }
        }
    }
    let form = Form(fields);
    if let Err(r) = csrf_ok(&s, form.get("csrf")) {
        return r;
    }
    if photos.is_empty() {
        return status_page(StatusCode::BAD_REQUEST, "no photo");
    }
    let g = gallery(&app).await.ok().flatten();
    let (name, id) = match target(form.get("name"), form.get("id"), g.as_ref()) {
        Ok(t) => t,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, &e),
    };
    let force = form.get("force") == Some("yes");
    enrol_images(&app, &s, photos, name, id, force).await
}

/// A time bound as the log writes times (RFC 3339 UTC, milliseconds), so they compare as text.
fn time_bound(s: &str) -> Result<Option<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")))
        .or_else(|_| humantime::parse_rfc3339(s))
        .map_err(|_| {
            format!(
                "{:?} is not a time (2026-11-29T08:00:00Z) or a date (2026-11-29)",
                super::clean(s)
            )
        })?;
    Ok(Some(humantime::format_rfc3339_millis(t).to_string()))
}

#[derive(serde::Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    person: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: usize,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        let cut = |s: &str| s.trim().chars().take(100).collect::<String>();
        AuditFilter {
            person: cut(&self.person),
            event: cut(&self.event),
            from: cut(&self.from),
            to: cut(&self.to),
            page: self.page.min(100_000),
        }
    }
}

/// The audit lines matching `f`, newest first: `skip` then at most `take`; and whether more
/// match.
fn read_audit(
    path: &std::path::Path,
    f: &AuditFilter,
    skip: usize,
    take: usize,
) -> Result<(Vec<serde_json::Value>, bool), String> {
    let from = time_bound(&f.from)?;
    let to = time_bound(&f.to)?;
    let mut files = crate::records::rotation::all_files(path);
    files.reverse();
    let mut matched = 0usize;
    let mut out = Vec::new();
    let mut read = 0u64;
    for file in files {
        if read > MAX_AUDIT_READ {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        read += text.len() as u64;
        for line in text.lines().rev() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
            let time = s("time");
            if from.as_deref().is_some_and(|b| time < b) || to.as_deref().is_some_and(|b| time >= b)
            {
                continue;
            }
            if !f.event.is_empty() && s("event") != f.event {
                continue;
            }
            if !f.person.is_empty()
                && s("identity") != f.person
                && s("nearest") != f.person
                && !s("name").eq_ignore_ascii_case(&f.person)
            {
                continue;
            }
            matched += 1;
            if matched <= skip {
                continue;
            }
            if out.len() == take {
                return Ok((out, true));
            }
            out.push(v);
        }
    }
    Ok((out, false))
}

fn field(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(x)) => x.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

async fn audit_page(
    State(app): State<Arc<App>>,
    Viewer(s): Viewer,
    Query(q): Query<AuditQuery>,
) -> Response {
    let f = q.filter();
    let path = app.config.audit.path.clone();
    let ff = f.clone();
    let result = tokio::task::spawn_blocking(move || {
        read_audit(&path, &ff, ff.page * AUDIT_PAGE, AUDIT_PAGE)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (lines, more, error) = match result {
        Ok((l, m)) => (l, m, None),
        Err(e) => (Vec::new(), false, Some(e)),
    };
    let rows: Vec<AuditRow> = lines
        .iter()
        .map(|v| {
            let who = match (field(v, "identity"), field(v, "name")) {
                (i, n) if !n.is_empty() && !i.is_empty() => format!("{i} ({n})"),
                (i, n) if i.is_empty() => n,
                (i, _) => i,
            };
            let mut detail = field(v, "reason");
            for k in ["nearest", "distance", "by"] {
                let x = field(v, k);
                if !x.is_empty() {
                    detail.push_str(&format!(" {k} {x}"));
                }
            }
            AuditRow {
                seq: v.get("seq").and_then(|x| x.as_u64()).unwrap_or(0),
                time: field(v, "time"),
                event: field(v, "event"),
                who,
                detail: detail.trim().chars().take(200).collect(),
                picture: v.get("picture").and_then(|x| x.as_bool()) == Some(true)
                    && v.get("seq").and_then(|x| x.as_u64()).is_some(),
            }
        })
        .collect();
    Html(pages::audit(&s, &f, &rows, more, error.as_deref()).into_string()).into_response()
}

async fn audit_csv(
    State(app): State<Arc<App>>,
    Viewer(_): Viewer,
    Query(q): Query<AuditQuery>,
) -> Response {
    let f = q.filter();
    let path = app.config.audit.path.clone();
    let result = tokio::task::spawn_blocking(move || read_audit(&path, &f, 0, MAX_CSV_LINES))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let lines = match result {
        Ok((l, _)) => l,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, &e),
    };
    let cols = [
        "seq", "time", "event", "identity", "name", "reason", "nearest", "distance", "by",
        "picture",
    ];
    let mut out = cols.join(",");
    out.push_str("\r\n");
    for v in lines.iter().rev() {
        let row: Vec<String> = cols.iter().map(|c| forms::csv_cell(&field(v, c))).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// The embeddings of the pictures `seqs` (kept from earlier visits, else fetched from the door
/// and embedded), and the pictures' PNG for those fetched now.
/// Pictures embedded for the review: their embeddings, the PNGs fetched now, and notes on
/// those that could not be had.
struct Fetched {
    pictures: Vec<super::faces::Picture>,
    pngs: HashMap<u64, Vec<u8>>,
    notes: Vec<String>,
}

async fn embedded(app: &Arc<App>, seqs: &[u64], need_png: bool) -> Result<Fetched, String> {
    let mut have = Vec::new();
    let mut missing = Vec::new();
    {
        let cache = app.embeddings.lock().unwrap_or_else(|e| e.into_inner());
        for &seq in seqs {
            match cache.get(&seq) {
                Some(e) if !need_png => have.push(super::faces::Picture {
                    seq,
                    embedding: e.clone(),
                }),
                _ => missing.push(seq),
            }
        }
    }
    let fetch = missing.clone();
    let fetched: Vec<(u64, Result<Vec<u8>, ClientError>)> = with_door(app, move |d| {
        Ok(fetch.iter().map(|&s| (s, d.picture(s))).collect())
    })
    .await?;
    let mut notes = Vec::new();
    let mut pngs = HashMap::new();
    let mut to_embed = Vec::new();
    for (seq, r) in fetched {
        match r {
            Ok(png) => {
                pngs.insert(seq, png.clone());
                to_embed.push((seq, png));
            }
            Err(e) => notes.push(format!("picture {seq}: {}", super::door::shown(&e))),
        }
    }
    let faces = app.faces.clone();
    let (new, failed) = tokio::task::spawn_blocking(move || faces.embed_pictures(&to_embed))
        .await
        .map_err(|e| e.to_string())??;
    for (seq, e) in failed {
        notes.push(format!("picture {seq}: {e}"));
    }
    {
        let mut cache = app.embeddings.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 4 * MAX_REVIEW {
            cache.clear();
        }
        for p in &new {
            cache.insert(p.seq, p.embedding.clone());
        }
    }
    have.extend(new);
    Ok(Fetched {
        pictures: have,
        pngs,
        notes,
    })
}

async fn review_page(State(app): State<Arc<App>>, Admin(s): Admin) -> Response {
    let seqs = match with_door(&app, |d| d.unknown_pictures()).await {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                Html(pages::message(Some(&s), "Review unknown faces", &[e], "/").into_string()),
            )
                .into_response()
        }
    };
    let mut notes = Vec::new();
    if seqs.len() > MAX_REVIEW {
        notes.push(format!(
            "The newest {MAX_REVIEW} of {} pictures are grouped; the rest come once these are done.",
            seqs.len()
        ));
    }
    let seqs: Vec<u64> = seqs.into_iter().take(MAX_REVIEW).collect();
    let groups = match embedded(&app, &seqs, false).await {
        Ok(Fetched {
            pictures, notes: n, ..
        }) => {
            notes.extend(n);
            let faces = app.faces.clone();
            match tokio::task::spawn_blocking(move || faces.group(&pictures)).await {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
                Err(e) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Err(e) => return status_page(StatusCode::BAD_GATEWAY, &e),
    };
    let people = gallery(&app)
        .await
        .ok()
        .flatten()
        .map(|g| rows(&g))
        .unwrap_or_default();
    Html(pages::review(&s, &groups, &people, &notes).into_string()).into_response()
}

/// `people add` with the faces of the pictures `seqs` (at most 10 used, all of them deleted
/// by the door once added).
async fn add_from_pictures(
    app: &Arc<App>,
    s: &Session,
    seqs: Vec<u64>,
    name: String,
    id: Option<String>,
) -> Response {
    let used: Vec<u64> = seqs.iter().copied().take(MAX_FACES).collect();
    let Fetched {
        pictures,
        pngs,
        mut notes,
    } = match embedded(app, &used, true).await {
        Ok(x) => x,
        Err(e) => return status_page(StatusCode::BAD_GATEWAY, &e),
    };
    let faces: Vec<NewFace> = pictures
        .iter()
        .filter_map(|p| {
            pngs.get(&p.seq).map(|png| NewFace {
                embedding: p.embedding.0.clone(),
                crop_png: base64::engine::general_purpose::STANDARD.encode(png),
            })
        })
        .collect();
    if faces.is_empty() {
        notes.insert(0, "None of these pictures could be used.".into());
        return (
            StatusCode::BAD_GATEWAY,
            Html(pages::message(Some(s), "Review", &notes, "/review").into_string()),
        )
            .into_response();
    }
    let request = AddPerson {
        name,
        id,
        faces,
        force: false,
        from_pictures: seqs,
    };
    let who = by(s);
    let result = with_door(app, move |d| d.add_person(&request, &who)).await;
    let (added, mut lines) = match result {
        Ok(id) => (Some(id), Vec::new()),
        Err(e) => (None, vec![e]),
    };
    lines.extend(notes);
    Html(pages::review_enrolled(s, added.as_deref(), &lines).into_string()).into_response()
}

fn review_seqs(form: &Form) -> Result<Vec<u64>, Response> {
    form.get("seqs")
        .and_then(|s| forms::seqs(s, MAX_REVIEW))
        .ok_or_else(|| status_page(StatusCode::BAD_REQUEST, "no pictures named"))
}

async fn review_enrol(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    let form = match checked_form(&s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let seqs = match review_seqs(&form) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = form
        .get("name")
        .and_then(forms::display_name)
        .map(str::to_owned)
    else {
        return status_page(StatusCode::BAD_REQUEST, "a name has 1 to 100 characters");
    };
    add_from_pictures(&app, &s, seqs, name, None).await
}

async fn review_add(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    let form = match checked_form(&s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let seqs = match review_seqs(&form) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let g = gallery(&app).await.ok().flatten();
    let Some(person) = form
        .get("id")
        .and_then(|id| g.as_ref().and_then(|g| g.get(id)))
    else {
        return status_page(StatusCode::BAD_REQUEST, "no such person");
    };
    let (name, id) = (person.name.clone(), Some(person.id.clone()));
    add_from_pictures(&app, &s, seqs, name, id).await
}

async fn review_dismiss(State(app): State<Arc<App>>, Admin(s): Admin, body: Bytes) -> Response {
    let form = match checked_form(&s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let seqs = match review_seqs(&form) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let who = by(&s);
    let r = with_door(&app, move |d| d.dismiss(&seqs, &who))
        .await
        .map(|n| format!("dismissed {n}"));
    outcome(&s, "Dismiss", r, "/review")
}

/// Serves `app` on `addr` until `stop` resolves: TLS when `tls` is given (else plain HTTP,
/// which the config allows only on loopback), at most [`MAX_CONNECTIONS`] at once, a TLS
/// handshake and a request's headers each within 10 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router(app);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut stop => return Ok(()),
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => return Ok(()),
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = tower::ServiceExt::map_request(
                router,
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                },
            );
            let service = hyper_util::service::TowerToHyperService::new(service);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(64 * 1024);
            let result = match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            _ => return,
                        };
                    http.serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await
                }
                None => {
                    http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// The console as `facegate-console` runs it, on a runtime of its own, until `stop` resolves:
/// `config`'s `[console]` (its TLS certificate made at first start when none is set), on
/// `listener` (already bound). `ready` is called once it accepts connections. The binary and the
/// simulator (`scripts/demo --console`, the browser test) both start the console here.
pub fn run_blocking(
    config: crate::config::Config,
    operator_key: Option<String>,
    listener: std::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<(), crate::console::ConsoleError> {
    let c = &config.console;
    let tls_config = if c.tls {
        Some(crate::console::tls::server_config(c)?)
    } else {
        None
    };
    let listen = std::path::PathBuf::from(c.listen.clone());
    let io = |source: std::io::Error| crate::console::ConsoleError::Io {
        path: listen.clone(),
        source,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io)?;
        let app = App::new(config.clone(), operator_key);
        ready();
        serve(listener, app, tls_config, stop).await.map_err(io)
    })
}

/// Resolves once `flag` is set (checked every 100 ms): a stop for [`run_blocking`] from a
/// thread without a runtime.
pub async fn stop_when(flag: Arc<std::sync::atomic::AtomicBool>) {
    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
