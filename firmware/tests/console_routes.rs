//! The web console's router, in process and for real (`facegate::console::server::router`):
//! sessions, roles, CSRF, the login rate limit, the security headers, the picture route's
//! argument, the audit page and its CSV, and what reaches a (fake) door.
#![cfg(feature = "console")]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use facegate::config::Config;
use facegate::console::auth::MAX_FAILURES;
use facegate::console::server::{router, App, CSP};
use facegate::console::users::{Role, Users};
use http_body_util::BodyExt;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use tower::ServiceExt;

const ADMIN_PW: &str = "admin password 1";
const VIEWER_PW: &str = "viewer password 1";

struct Console {
    _dir: tempfile::TempDir,
    router: axum::Router,
    config: Config,
}

fn console_with(dir: tempfile::TempDir, socket: &Path) -> Console {
    let mut users = Users::default();
    users.set("ada", Role::Admin, ADMIN_PW).unwrap();
    users.set("bob", Role::Viewer, VIEWER_PW).unwrap();
    let users_path = dir.path().join("users.toml");
    users.save(&users_path).unwrap();
    let mut config = Config::default();
    config.console.users = users_path;
    config.gallery.path = dir.path().join("gallery.toml");
    config.audit.path = dir.path().join("audit.jsonl");
    config.control.socket = socket.to_owned();
    let app = App::new(config.clone(), None);
    Console {
        _dir: dir,
        router: router(app),
        config,
    }
}

fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    console_with(dir, &socket)
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(c: &Console, req: Request<Body>) -> Reply {
    let res = c.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-facegate={c}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-facegate={c}"));
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

/// A login POST as a browser sends it: with the login form's cookie and token (from a GET of
/// /login first).
async fn login_post(c: &Console, form: &str) -> Request<Body> {
    let page = send(c, get("/login", None)).await;
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    let token = cookie
        .strip_prefix("__Host-facegate-login=")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    assert!(page
        .body
        .contains(&format!("name=\"login\" value=\"{token}\"")));
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("__Host-facegate-login={token}"))
        .body(Body::from(format!("{form}&login={token}")))
        .unwrap()
}

/// Logs in; the session token and its CSRF token.
async fn login(c: &Console, name: &str, password: &str) -> (String, String) {
    let req = login_post(
        c,
        &format!("name={name}&password={}", password.replace(' ', "+")),
    )
    .await;
    let r = send(c, req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
    let token = cookie
        .strip_prefix("__Host-facegate=")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    let page = send(c, get("/audit", Some(&token))).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    (token, csrf)
}

const ADMIN_POSTS: &[&str] = &[
    "/door/unlock",
    "/door/lockdown",
    "/people/new",
    "/people/ada-1/rename",
    "/people/ada-1/remove",
    "/people/ada-1/policy",
    "/people/ada-1/credential",
    "/review/enrol",
    "/review/add",
    "/review/dismiss",
];
const ADMIN_PAGES: &[&str] = &["/people/new", "/review"];
const VIEWER_PAGES: &[&str] = &[
    "/",
    "/audit",
    "/audit.csv",
    "/live.jpg",
    "/picture/1",
    "/people",
    "/people/ada-1",
];
const VIEWER_API: &[&str] = &["/api/status", "/api/events", "/api/live"];

fn assert_headers(r: &Reply, what: &str) {
    let h = |k: &str| {
        r.headers
            .get(k)
            .unwrap_or_else(|| panic!("{what}: no {k}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(h("content-security-policy"), CSP, "{what}");
    assert_eq!(
        CSP,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(h("cache-control"), "no-store", "{what}");
    assert!(
        h("strict-transport-security").starts_with("max-age="),
        "{what}"
    );
}

#[tokio::test]
async fn every_page_and_action_needs_a_session() {
    let c = console();
    for path in ADMIN_PAGES.iter().chain(VIEWER_PAGES) {
        let r = send(&c, get(path, None)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(r.headers[header::LOCATION], "/login", "GET {path}");
        assert_headers(&r, path);
    }
    for path in VIEWER_API {
        let r = send(&c, get(path, None)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "GET {path}");
        assert_headers(&r, path);
    }
    for path in ADMIN_POSTS.iter().chain(&["/logout", "/people/upload"]) {
        let r = send(&c, post(path, None, "csrf=x")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "POST {path}");
        assert_headers(&r, path);
    }
    // A made-up token is no session.
    let r = send(&c, get("/audit", Some(&"a".repeat(64)))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_viewer_is_refused_admin_pages_and_actions() {
    let c = console();
    let (token, csrf) = login(&c, "bob", VIEWER_PW).await;
    for path in ADMIN_PAGES {
        let r = send(&c, get(path, Some(&token))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "GET {path}");
    }
    for path in ADMIN_POSTS {
        let r = send(
            &c,
            post(
                path,
                Some(&token),
                &format!("csrf={csrf}&state=on&name=x&seqs=1&confirm=yes"),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {path}");
        assert_headers(&r, path);
    }
    // What a viewer may see.
    let r = send(&c, get("/audit", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.body.contains("/review") && !r.body.contains("/people/new"),
        "a viewer's menu has no admin pages"
    );
    let r = send(&c, get("/", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.body.contains("/door/unlock"),
        "a viewer has no door controls"
    );
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused() {
    let c = console();
    let (token, csrf) = login(&c, "ada", ADMIN_PW).await;
    for path in ADMIN_POSTS.iter().chain(&["/logout"]) {
        for form in [
            "state=on".to_owned(),
            format!("csrf={}&state=on", "0".repeat(64)),
            "csrf=&state=on".into(),
            format!("csrf={}", &csrf[..63]),
        ] {
            let r = send(&c, post(path, Some(&token), &form)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {path} {form}");
        }
    }
    // With the token the action goes through to the door (absent here: 502, not 403).
    let r = send(
        &c,
        post("/door/unlock", Some(&token), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    // Another session's token is not this one's.
    let (_, other) = login(&c, "ada", ADMIN_PW).await;
    assert_ne!(other, csrf);
    let r = send(
        &c,
        post("/door/unlock", Some(&token), &format!("csrf={other}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Logout ends the session.
    let r = send(&c, post("/logout", Some(&token), &format!("csrf={csrf}"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = send(&c, get("/audit", Some(&token))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_rate_limited() {
    let c = console();
    let req = login_post(&c, "name=ada&password=wrong+password").await;
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let req = login_post(&c, "name=nobody&password=wrong+password").await;
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for _ in 2..MAX_FAILURES {
        let req = login_post(&c, "name=ada&password=wrong+password").await;
        let r = send(&c, req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The limit is reached (per client address: these requests have none, so one shared key),
    // and then even the right password is answered 429.
    let right = format!("name=ada&password={}", ADMIN_PW.replace(' ', "+"));
    let req = login_post(&c, &right).await;
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_headers(&r, "429");
    assert!(r.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn login_is_limited_per_user_across_addresses() {
    let c = console();
    for i in 0..MAX_FAILURES {
        let mut req = login_post(&c, "name=bob&password=wrong+password").await;
        let addr: std::net::SocketAddr = format!("10.0.0.{}:5000", i + 1).parse().unwrap();
        req.extensions_mut()
            .insert(facegate::console::server::ClientAddr(addr));
        assert_eq!(send(&c, req).await.status, StatusCode::UNAUTHORIZED);
    }
    let mut req = login_post(
        &c,
        &format!("name=bob&password={}", VIEWER_PW.replace(' ', "+")),
    )
    .await;
    let addr: std::net::SocketAddr = "10.0.0.99:5000".parse().unwrap();
    req.extensions_mut()
        .insert(facegate::console::server::ClientAddr(addr));
    assert_eq!(send(&c, req).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Another user from another address still logs in.
    let mut req = login_post(
        &c,
        &format!("name=ada&password={}", ADMIN_PW.replace(' ', "+")),
    )
    .await;
    let addr: std::net::SocketAddr = "10.0.1.1:5000".parse().unwrap();
    req.extensions_mut()
        .insert(facegate::console::server::ClientAddr(addr));
    assert_eq!(send(&c, req).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let c = console();
    let (token, csrf) = login(&c, "ada", ADMIN_PW).await;
    let reqs = vec![
        get("/login", None),
        get("/static/console.js", None),
        get("/static/console.css", None),
        get("/no/such/page", None),
        get("/no/such/page", Some(&token)),
        get("/", Some(&token)),
        get("/people", Some(&token)),
        get("/people/new", Some(&token)),
        get("/audit", Some(&token)),
        get("/audit.csv", Some(&token)),
        get("/api/status", Some(&token)),
        get("/api/live", Some(&token)),
        get("/review", Some(&token)),
        get("/picture/abc", Some(&token)),
        post("/login", None, "name=ada&password=x"),
        post("/door/unlock", Some(&token), &format!("csrf={csrf}")),
        post(
            "/door/lockdown",
            Some(&token),
            &format!("csrf={csrf}&state=maybe"),
        ),
        post(
            "/people/ada-1/rename",
            Some(&token),
            &format!("csrf={csrf}&name="),
        ),
        post("/door/unlock", Some(&token), &"x".repeat(64 * 1024)),
    ];
    for req in reqs {
        let what = format!("{} {}", req.method(), req.uri());
        let r = send(&c, req).await;
        assert_headers(&r, &what);
    }
}

#[tokio::test]
async fn picture_takes_a_number_only_and_bodies_are_bounded() {
    let c = console();
    let (token, csrf) = login(&c, "bob", VIEWER_PW).await;
    for path in [
        "/picture/abc",
        "/picture/-1",
        "/picture/1.0",
        "/picture/%2E%2E",
        "/picture/99999999999999999999999",
    ] {
        let r = send(&c, get(path, Some(&token))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    for path in ["/picture/../x", "/picture/1/2", "/picture/"] {
        let r = send(&c, get(path, Some(&token))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A number, but no door: not found.
    let r = send(&c, get("/picture/12", Some(&token))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A form body over 16 KiB is refused before anything is done.
    let (admin, acsrf) = login(&c, "ada", ADMIN_PW).await;
    let big = format!("csrf={acsrf}&pad={}", "x".repeat(20 * 1024));
    let r = send(&c, post("/door/unlock", Some(&admin), &big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let _ = csrf;
}

#[tokio::test]
async fn audit_page_filters_shows_pictures_escapes_and_exports_safe_csv() {
    let c = console();
    let lines = [
        r#"{"seq":1,"time":"2026-12-01T08:00:00.000Z","t":1.0,"event":"grant","identity":"ada-1","name":"Ada","distance":0.3}"#,
        r#"{"seq":2,"time":"2026-12-02T08:00:00.000Z","t":2.0,"event":"deny","identity":"unknown","reason":"=HYPERLINK(\"http://x\")","picture":true}"#,
        r#"{"seq":3,"time":"2026-12-03T08:00:00.000Z","t":3.0,"event":"grant","identity":"eve-1","name":"<script>alert(1)</script>"}"#,
    ];
    std::fs::write(&c.config.audit.path, lines.join("\n") + "\n").unwrap();
    let (token, _) = login(&c, "bob", VIEWER_PW).await;
    let r = send(&c, get("/audit", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("src=\"/picture/2\""), "{}", r.body);
    assert!(!r.body.contains("src=\"/picture/1\""));
    assert!(!r.body.contains("<script>alert"), "escaped");
    assert!(r.body.contains("&lt;script&gt;"));
    let r = send(&c, get("/audit?event=grant&person=ada-1", Some(&token))).await;
    assert!(
        r.body.contains("Ada") && !r.body.contains("eve-1"),
        "{}",
        r.body
    );
    let r = send(
        &c,
        get("/audit?from=2026-12-02&to=2026-12-03", Some(&token)),
    )
    .await;
    assert!(
        r.body.contains("/picture/2") && !r.body.contains("ada-1") && !r.body.contains("eve-1")
    );
    let r = send(&c, get("/audit?from=yesterday", Some(&token))).await;
    assert!(r.body.contains("is not a time"));
    let r = send(&c, get("/audit.csv", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let rows: Vec<&str> = r.body.lines().collect();
    assert_eq!(rows.len(), 4, "{}", r.body);
    assert!(rows[0].starts_with("seq,time,event"));
    assert!(rows[1].starts_with("1,"), "oldest first: {}", r.body);
    assert!(
        rows[2].contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{}",
        rows[2]
    );
    assert!(!r.body.contains(",=HYPERLINK"));
}

#[tokio::test]
async fn door_actions_reach_the_door_as_login_at_console() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("door.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let door = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            seen.push(line.trim_end().to_owned());
            let answer = if line.starts_with("unlock") {
                "OK opened\n"
            } else {
                "OK lockdown on\n"
            };
            r.get_mut().write_all(answer.as_bytes()).unwrap();
        }
        seen
    });
    let c = console_with(dir, &socket);
    let (token, csrf) = login(&c, "ada", ADMIN_PW).await;
    let r = send(
        &c,
        post("/door/unlock", Some(&token), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("opened"));
    let r = send(
        &c,
        post(
            "/door/lockdown",
            Some(&token),
            &format!("csrf={csrf}&state=on"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        door.join().unwrap(),
        vec![
            "unlock by ada@console".to_string(),
            "lockdown on by ada@console".to_string()
        ]
    );
}

#[tokio::test]
async fn a_removed_account_loses_its_session_and_a_changed_role_applies() {
    let c = console();
    let (token, csrf) = login(&c, "ada", ADMIN_PW).await;
    let mut users = Users::load(&c.config.console.users).unwrap();
    users.set("ada", Role::Viewer, ADMIN_PW).unwrap();
    users.save(&c.config.console.users).unwrap();
    let r = send(
        &c,
        post("/door/unlock", Some(&token), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    users.remove("ada");
    users.save(&c.config.console.users).unwrap();
    let r = send(&c, get("/audit", Some(&token))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

/// The console served for real: TLS on a bound port (the self-signed certificate it makes),
/// a TLS client that trusts that certificate, one request.
#[tokio::test]
async fn served_over_tls_with_its_self_signed_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = console();
    let tls = facegate::console::tls::server_config(&c.config.console).unwrap();
    let (cert, _) = c.config.console.tls_files();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::new(c.config.clone(), None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(facegate::console::server::serve(
        listener,
        app,
        Some(tls),
        async {
            let _ = stop_rx.await;
        },
    ));

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for der in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream
        .write_all(b"GET /audit HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 303"), "{answer}");
    assert!(answer.contains("location: /login"), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age="),
        "{answer}"
    );

    // Plain TCP to the TLS port gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut got),
    )
    .await;
    assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1 200"));

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn plain_http_only_on_loopback() {
    let path = Path::new("config.toml");
    let ok = Config::parse(
        "[console]\nlisten = \"127.0.0.1:8080\"\ntls = false\n",
        path,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let err =
        Config::parse("[console]\nlisten = \"0.0.0.0:8080\"\ntls = false\n", path).unwrap_err();
    assert!(err.to_string().contains("console.tls"), "{err}");
    let err = Config::parse("[console]\nlisten = \"nowhere\"\n", path).unwrap_err();
    assert!(err.to_string().contains("console.listen"), "{err}");
    let err = Config::parse("[console]\ntls_cert = \"/x.pem\"\n", path).unwrap_err();
    assert!(err.to_string().contains("tls_key"), "{err}");
}

/// `/api/events`: the door's audit lines as server-sent events, every browser fed by one
/// `events` connection to the door.
#[tokio::test]
async fn events_reach_the_browser_as_server_sent_events() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("door.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let s = conn.unwrap();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert_eq!(line, "events\n");
                let w = r.get_mut();
                w.write_all(b"OK events\n").unwrap();
                for i in 0..50 {
                    let ev =
                        format!("{{\"seq\":{i},\"event\":\"grant\",\"identity\":\"ada-1\"}}\n");
                    if w.write_all(ev.as_bytes()).is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        }
    });
    let c = console_with(dir, &socket);
    let (token, _) = login(&c, "bob", VIEWER_PW).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let res = c
            .router
            .clone()
            .oneshot(get("/api/events", Some(&token)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        bodies.push(res.into_body());
    }
    for body in &mut bodies {
        let mut got = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !got.contains("data: {\"seq\"") {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .expect("an event in time");
            let frame = frame.unwrap().unwrap();
            if let Some(d) = frame.data_ref() {
                got.push_str(&String::from_utf8_lossy(d));
            }
        }
        assert!(got.contains("\"identity\":\"ada-1\""), "{got}");
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one door connection for both"
    );
}

#[tokio::test]
async fn login_needs_the_login_forms_own_token() {
    let c = console();
    let right = format!("name=ada&password={}", ADMIN_PW.replace(' ', "+"));
    // Without the login form's cookie and token (another site's form), or with a token that is
    // not the cookie's: refused, and no session.
    let r = send(&c, post("/login", None, &right)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let forged = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("__Host-facegate-login={}", "a".repeat(64)),
        )
        .body(Body::from(format!("{right}&login={}", "b".repeat(64))))
        .unwrap();
    let r = send(&c, forged).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let req = login_post(&c, &right).await;
    assert_eq!(send(&c, req).await.status, StatusCode::SEE_OTHER);
}

/// The door's control API for real (its gallery requests, the library's checks, the gallery's
/// lock), with a stand-in for the door's loop that answers each change as the daemon does.
struct RealDoor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _server: facegate::door::control_api::Server,
    looped: std::thread::JoinHandle<Vec<String>>,
}

fn real_door(config: &Config) -> RealDoor {
    use facegate::door::control_api::people::{GalleryAccess, PeopleChange};
    use facegate::door::control_api::{Answer, Command, ControlApi};
    use facegate::people::gallery::{Enrolment, Gallery, Locked, Person};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let models = facegate::vision::models::ModelSet::builtin().unwrap();
    let (_, spec) = models.embedder(None).unwrap();
    let mut g = Gallery::new(&spec.fingerprint);
    for (id, name, i) in [("ada-1", "Ada", 0), ("bob-1", "Bob", 1)] {
        let mut embedding = vec![0.0; spec.dim];
        embedding[i] = 1.0;
        g.people.push(Person {
            id: id.into(),
            name: name.into(),
            enrolments: vec![Enrolment {
                enrolled_at: "2026-12-01T08:00:00Z".into(),
                source: "test".into(),
                sha256: "0".repeat(64),
                embedding,
                crop: None,
            }],
            policy: Default::default(),
            credential: None,
            pin_hash: None,
            duress_hash: None,
        });
    }
    Locked::acquire(&config.gallery.path)
        .unwrap()
        .save(&g)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (server, rx) = ControlApi::bind(config.control.socket().unwrap())
        .unwrap()
        .with_gallery(GalleryAccess::new(config, spec))
        .serve(Arc::clone(&stop));
    let looping = Arc::clone(&stop);
    let looped = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !looping.load(Ordering::SeqCst) {
            if let Ok(req) = rx.recv_timeout(std::time::Duration::from_millis(20)) {
                let answer = match req.command {
                    Command::PeopleChanged { change, by } => {
                        let (what, id) = match change {
                            PeopleChange::Policy { id, .. } => ("policy", id),
                            PeopleChange::Credential { id, .. } => ("credential", id),
                            other => panic!("{other:?}"),
                        };
                        seen.push(format!("{what} {id} by {by}"));
                        Answer::Ok(format!("{what} {id}"))
                    }
                    c => Answer::Err(format!("{c:?}")),
                };
                let _ = req.reply.send(answer);
            }
        }
        seen
    });
    RealDoor {
        stop,
        _server: server,
        looped,
    }
}

/// An admin's access and card changes go through the door (who asked: `LOGIN@console`), and the
/// person page shows them; a viewer sees the policy read-only and not the card's number; a
/// refused change says why and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_access_and_card_through_the_door_and_the_page_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("door.sock");
    let c = console_with(dir, &socket);
    let door = real_door(&c.config);
    let (admin, csrf) = login(&c, "ada", ADMIN_PW).await;
    let (viewer, vcsrf) = login(&c, "bob", VIEWER_PW).await;

    let page = send(&c, get("/people/ada-1", Some(&admin))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("form id=\"policy\""), "{}", page.body);
    assert!(page.body.contains("No card."));

    let form = format!(
        "csrf={csrf}&valid_from=2026-12-01&valid_until=2027-01-01&windows=mon-fri+07%3A00-19%3A00%0D%0Asat+10%3A00-12%3A00&factors=card_and_face"
    );
    let r = send(&c, post("/people/ada-1/policy", Some(&admin), &form)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("policy ada-1"), "{}", r.body);
    let r = send(
        &c,
        post(
            "/people/ada-1/credential",
            Some(&admin),
            &format!("csrf={csrf}&format=wiegand26&facility=18&card=4660"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let page = send(&c, get("/people/ada-1", Some(&admin))).await;
    for shown in [
        "no (disabled)",
        "2026-12-01T00:00:00",
        "2027-01-01T00:00:00",
        "mon,tue,wed,thu,fri 07:00-19:00",
        "sat 10:00-12:00",
        "card_and_face",
        "refused now: disabled",
        "wiegand26 facility 18 card 4660",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }

    // A viewer: the policy, read-only; the card's format but not its number; no form.
    let page = send(&c, get("/people/ada-1", Some(&viewer))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("mon,tue,wed,thu,fri 07:00-19:00"));
    assert!(page.body.contains("A wiegand26 card"), "{}", page.body);
    assert!(!page.body.contains("4660"), "{}", page.body);
    assert!(!page.body.contains("<form id=\"policy\""));
    assert!(!page.body.contains("/credential\""));
    let r = send(
        &c,
        post(
            "/people/ada-1/credential",
            Some(&viewer),
            &format!("csrf={vcsrf}&clear=yes"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Ada's card for Bob: the door refuses, and says why.
    let gallery_before = std::fs::read(&c.config.gallery.path).unwrap();
    let r = send(
        &c,
        post(
            "/people/bob-1/credential",
            Some(&admin),
            &format!("csrf={csrf}&format=wiegand26&facility=18&card=4660"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("already belongs to ada-1"), "{}", r.body);
    // A bad form: refused by the console before the door, with the reason.
    let r = send(
        &c,
        post(
            "/people/bob-1/policy",
            Some(&admin),
            &format!("csrf={csrf}&enabled=yes&windows=mon+9-10"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("HH:MM"), "{}", r.body);
    let r = send(
        &c,
        post(
            "/people/bob-1/credential",
            Some(&admin),
            &format!("csrf={csrf}&facility=256&card=1"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("out of range"), "{}", r.body);
    assert_eq!(
        std::fs::read(&c.config.gallery.path).unwrap(),
        gallery_before,
        "nothing stored"
    );

    // Cleared.
    let r = send(
        &c,
        post(
            "/people/ada-1/credential",
            Some(&admin),
            &format!("csrf={csrf}&clear=yes"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = send(&c, get("/people/ada-1", Some(&admin))).await;
    assert!(page.body.contains("No card."));

    door.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        door.looped.join().unwrap(),
        [
            "policy ada-1 by ada@console",
            "credential ada-1 by ada@console",
            "credential ada-1 by ada@console"
        ]
    );
}
