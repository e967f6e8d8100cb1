//! The web console's face work end to end, on real photos and the built-in networks, against a
//! fake door that speaks the control API: enrolment from the door camera (`snapshot` then
//! `people add` with embeddings and PNG crops), and the review of unknown faces (`pictures
//! unknown`, `picture SEQ`, grouped, then `people add` with `from_pictures` and `pictures
//! dismiss`).
#![cfg(feature = "console")]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use facegate::access::enrolment::enrolment_face;
use facegate::config::Config;
use facegate::console::server::{router, App};
use facegate::console::users::{Role, Users};
use facegate::{ModelSet, Pipeline};
use facegate_e2e::fixture;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const PW: &str = "admin password 1";

/// What the fake door was asked: each request line and its payload.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A door on `socket` that answers `snapshot` with `snapshot`, `picture N` from `pictures`,
/// `pictures unknown` with their seqs (newest first), `people add` and `pictures dismiss`.
fn fake_door(socket: &std::path::Path, snapshot: Vec<u8>, pictures: HashMap<u64, Vec<u8>>) -> Seen {
    let listener = UnixListener::bind(socket).unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let log = log.clone();
            let (snapshot, pictures) = (snapshot.clone(), pictures.clone());
            // As the door does: requests one after another on a connection until it closes.
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end().to_owned();
                    let words: Vec<&str> = line.split(' ').collect();
                    let mut payload = Vec::new();
                    let answer: Vec<u8> = match words.as_slice() {
                        ["operator", _] => b"OK operator\n".to_vec(),
                        ["snapshot"] => {
                            let mut a = format!("OK snapshot {}\n", snapshot.len()).into_bytes();
                            a.extend_from_slice(&snapshot);
                            a
                        }
                        ["pictures", "unknown"] => {
                            let mut seqs: Vec<u64> = pictures.keys().copied().collect();
                            seqs.sort_unstable_by(|a, b| b.cmp(a));
                            let mut a = format!("OK pictures {}\n", seqs.len());
                            for s in seqs {
                                a.push_str(&format!("{s}\n"));
                            }
                            a.into_bytes()
                        }
                        ["picture", n] => match pictures.get(&n.parse::<u64>().unwrap()) {
                            Some(png) => {
                                let mut a = format!("OK picture {}\n", png.len()).into_bytes();
                                a.extend_from_slice(png);
                                a
                            }
                            None => format!("ERR no picture for {n}\n").into_bytes(),
                        },
                        ["people", "add", len, "by", _] => {
                            payload = vec![0; len.parse().unwrap()];
                            r.read_exact(&mut payload).unwrap();
                            b"OK added new-person\n".to_vec()
                        }
                        ["pictures", "dismiss", seqs, "by", _] => {
                            format!("OK dismissed {}\n", seqs.split(',').count()).into_bytes()
                        }
                        _ => b"ERR unknown\n".to_vec(),
                    };
                    if !line.starts_with("operator ") {
                        log.lock().unwrap().push((line, payload));
                    }
                    if r.get_mut().write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    seen
}

struct Console {
    _dir: tempfile::TempDir,
    router: axum::Router,
    token: String,
    csrf: String,
    seen: Seen,
}

async fn console(snapshot: Vec<u8>, pictures: HashMap<u64, Vec<u8>>) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let mut users = Users::default();
    users.set("ada", Role::Admin, PW).unwrap();
    let mut config = Config::default();
    config.console.users = dir.path().join("users.toml");
    users.save(&config.console.users).unwrap();
    config.gallery.path = dir.path().join("gallery.toml");
    config.audit.path = dir.path().join("audit.jsonl");
    config.control.socket = dir.path().join("door.sock");
    let seen = fake_door(&config.control.socket, snapshot, pictures);
    let router = router(App::new(config, None));
    let page = router
        .clone()
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let login = page.headers()[header::SET_COOKIE].to_str().unwrap()
        ["__Host-facegate-login=".len()..][..64]
        .to_owned();
    let res = router
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("__Host-facegate-login={login}"))
                .body(Body::from(format!(
                    "name=ada&password={}&login={login}",
                    PW.replace(' ', "+")
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    let token = cookie["__Host-facegate=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = body(router.clone().oneshot(get("/audit", &token)).await.unwrap()).await;
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap()[..64].to_owned();
    Console {
        _dir: dir,
        router,
        token,
        csrf,
        seen,
    }
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, format!("__Host-facegate={token}"))
        .body(Body::empty())
        .unwrap()
}

fn form(path: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(t) = token {
        b = b.header(header::COOKIE, format!("__Host-facegate={t}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

async fn body(res: axum::response::Response) -> String {
    String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

fn embedder_dim() -> usize {
    let models = ModelSet::builtin().unwrap();
    models.embedder(None).unwrap().1.dim
}

#[tokio::test]
async fn enrols_from_the_door_camera_with_embeddings_and_crops() {
    let jpeg = std::fs::read(fixture("obama.jpg")).unwrap();
    let c = console(jpeg, HashMap::new()).await;
    let res = c
        .router
        .clone()
        .oneshot(form(
            "/people/new",
            Some(&c.token),
            &format!("csrf={}&name=Barack+O", c.csrf),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res).await;
    assert!(
        page.contains("id=\"enrolled\" data-id=\"new-person\""),
        "{page}"
    );
    let seen = c.seen.lock().unwrap().clone();
    let snapshots = seen.iter().filter(|(l, _)| l == "snapshot").count();
    assert_eq!(snapshots, 5, "{seen:?}");
    let (line, payload) = seen
        .iter()
        .find(|(l, _)| l.starts_with("people add"))
        .unwrap();
    assert!(line.ends_with(" by ada@console"), "{line}");
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(v["name"], "Barack O");
    assert!(v["id"].is_null());
    assert_eq!(v["force"], false);
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 5, "five good pictures of the same photo");
    for f in faces {
        assert_eq!(f["embedding"].as_array().unwrap().len(), embedder_dim());
        let png = base64::engine::general_purpose::STANDARD
            .decode(f["crop_png"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!(img.width(), facegate::people::crops::CROP_SIZE);
    }
}

#[tokio::test]
async fn a_camera_without_a_usable_face_enrols_nobody() {
    let jpeg = std::fs::read(fixture("coffee.png")).unwrap();
    let c = console(jpeg, HashMap::new()).await;
    let res = c
        .router
        .clone()
        .oneshot(form(
            "/people/new",
            Some(&c.token),
            &format!("csrf={}&name=Nobody", c.csrf),
        ))
        .await
        .unwrap();
    let page = body(res).await;
    assert!(page.contains("nobody was enrolled"), "{page}");
    assert!(page.contains("not used"), "{page}");
    assert!(!c
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(l, _)| l.starts_with("people add")));
}

/// The PNG crop of the one face in `photo`, as the door keeps a decision picture.
fn crop_of(pipeline: &mut Pipeline, photo: &str) -> Vec<u8> {
    let face = enrolment_face(pipeline, &fixture(photo)).unwrap();
    face.crop.encode().unwrap().png().to_vec()
}

#[tokio::test]
async fn review_groups_unknown_faces_and_enrols_or_dismisses_a_group() {
    let models = ModelSet::builtin().unwrap();
    let mut pipeline = Pipeline::new(&models, None, None).unwrap();
    let pictures: HashMap<u64, Vec<u8>> = [
        (11, crop_of(&mut pipeline, "obama.jpg")),
        (12, crop_of(&mut pipeline, "biden.jpg")),
        (13, crop_of(&mut pipeline, "obama2.jpg")),
        (14, crop_of(&mut pipeline, "obama3.jpg")),
    ]
    .into();
    let c = console(Vec::new(), pictures).await;
    let res = c
        .router
        .clone()
        .oneshot(get("/review", &c.token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res).await;
    // Two groups: the three photos of one man together, the other man alone.
    assert!(page.contains("Group 1 (3 picture(s))"), "{page}");
    assert!(page.contains("Group 2 (1 picture(s))"), "{page}");
    let group1 = page
        .split("Group 1")
        .nth(1)
        .unwrap()
        .split("Group 2")
        .next()
        .unwrap();
    for seq in [11, 13, 14] {
        assert!(
            group1.contains(&format!("src=\"/picture/{seq}\"")),
            "{group1}"
        );
    }
    let seqs = group1
        .split("name=\"seqs\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    let res = c
        .router
        .clone()
        .oneshot(form(
            "/review/enrol",
            Some(&c.token),
            &format!(
                "csrf={}&seqs={}&name=Barack",
                c.csrf,
                seqs.replace(',', "%2C")
            ),
        ))
        .await
        .unwrap();
    let page = body(res).await;
    assert!(
        page.contains("id=\"enrolled\" data-id=\"new-person\""),
        "{page}"
    );
    let seen = c.seen.lock().unwrap().clone();
    let (_, payload) = seen
        .iter()
        .find(|(l, _)| l.starts_with("people add"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(v["faces"].as_array().unwrap().len(), 3);
    let mut from: Vec<u64> = v["from_pictures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    from.sort_unstable();
    assert_eq!(from, vec![11, 13, 14]);

    let res = c
        .router
        .clone()
        .oneshot(form(
            "/review/dismiss",
            Some(&c.token),
            &format!("csrf={}&seqs=12", c.csrf),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(c
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(l, _)| l == "pictures dismiss 12 by ada@console"));
}

fn multipart(token: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let boundary = "facegateBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/people/upload")
        .header(header::COOKIE, format!("__Host-facegate={token}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn enrols_from_uploaded_photos_with_the_csrf_token_only() {
    let c = console(Vec::new(), HashMap::new()).await;
    let photo = std::fs::read(fixture("obama2.jpg")).unwrap();
    let csrf = c.csrf.clone();
    // No token, a wrong one: refused before anything is looked at.
    for token in [None, Some("0".repeat(64))] {
        let mut parts: Vec<(&str, Option<&str>, &[u8])> =
            vec![("name", None, b"Barack"), ("photo", Some("b.jpg"), &photo)];
        if let Some(t) = &token {
            parts.insert(0, ("csrf", None, t.as_bytes()));
        }
        let res = c
            .router
            .clone()
            .oneshot(multipart(&c.token, &parts))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    // Over 8 MiB: refused.
    let big = vec![0u8; 9 << 20];
    let res = c
        .router
        .clone()
        .oneshot(multipart(
            &c.token,
            &[
                ("csrf", None, csrf.as_bytes()),
                ("photo", Some("big.jpg"), &big),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!c
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(l, _)| l.starts_with("people add")));

    let res = c
        .router
        .clone()
        .oneshot(multipart(
            &c.token,
            &[
                ("csrf", None, csrf.as_bytes()),
                ("name", None, b"Barack"),
                ("photo", Some("b.jpg"), &photo),
                ("photo", Some("not-a-photo.jpg"), b"hello"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res).await;
    assert!(
        page.contains("id=\"enrolled\" data-id=\"new-person\""),
        "{page}"
    );
    assert!(
        page.contains("not-a-photo.jpg") && page.contains("not used"),
        "{page}"
    );
    let seen = c.seen.lock().unwrap().clone();
    let (_, payload) = seen
        .iter()
        .find(|(l, _)| l.starts_with("people add"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(v["name"], "Barack");
    assert_eq!(v["faces"].as_array().unwrap().len(), 1);
}
