//! The web console at a big site (issue 25's targets): the real `facegate-console` binary on a
//! gallery of 1,000 people and an audit log of 10,000 decisions; the time to serve the people
//! and audit pages (logged in, over loopback, plain HTTP so that only the console's own work is
//! timed), and its resident memory before and after. Run: `cargo bench -p facegate --bench
//! console` (builds the binary first: `cargo build --release -p facegate --bin
//! facegate-console`). Prints one JSON object.

use facegate::console::users::{Role, Users};
use facegate::people::gallery::{Enrolment, Gallery, Locked, Person};
use facegate::records::audit::{AuditLog, AuditSink, Event, EventKind};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

const PEOPLE: usize = 1000;
const DECISIONS: usize = 10_000;
const ROUNDS: usize = 30;

/// A deterministic unit vector (xorshift), so runs compare.
fn embedding(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn prepare(dir: &Path, fingerprint: &str) {
    let mut g = Gallery::new(fingerprint);
    for i in 0..PEOPLE {
        g.people.push(Person {
            id: format!("person-{i:04}"),
            name: format!("Person {i:04}"),
            enrolments: vec![Enrolment {
                enrolled_at: "2026-12-01T08:00:00Z".into(),
                source: format!("p{i}.jpg"),
                sha256: "0".repeat(64),
                embedding: embedding(i as u64, 128),
                crop: None,
            }],
            policy: Default::default(),
            credential: None,
            pin_hash: None,
            duress_hash: None,
        });
    }
    let path = dir.join("gallery.toml");
    Locked::acquire(&path).unwrap().save(&g).unwrap();
    let mut log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    let start = SystemTime::now() - Duration::from_secs(DECISIONS as u64 * 30);
    for i in 0..DECISIONS {
        let grant = i % 4 != 0;
        let mut e = Event::new(
            if grant {
                EventKind::Grant
            } else {
                EventKind::Deny
            },
            start + Duration::from_secs(i as u64 * 30),
            Duration::from_secs(i as u64 * 30),
        );
        e.identity = Some(if grant {
            format!("person-{:04}", i % PEOPLE)
        } else {
            "unknown".into()
        });
        e.distance = Some(0.3);
        e.frames = Some(3);
        e.reason = (!grant).then(|| "unknown".into());
        log.record(&e).unwrap();
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
fn http(port: u16, req: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_owned(), body.to_owned())
}

fn cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find(|c| c.starts_with(name))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/facegate-console");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p facegate --bin facegate-console"
    );
    let dir = tempfile::tempdir().unwrap();
    let fingerprint = facegate::vision::models::ModelSet::builtin()
        .unwrap()
        .manifest
        .embedders["sface_2021dec_int8"]
        .fingerprint
        .clone();
    let prepared = Instant::now();
    prepare(dir.path(), &fingerprint);
    let prepared = prepared.elapsed();
    let mut users = Users::default();
    users.set("bench", Role::Admin, "bench-password-1").unwrap();
    users.save(&dir.path().join("users.toml")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[gallery]\npath = \"{d}/gallery.toml\"\n[audit]\npath = \"{d}/audit.jsonl\"\n\
             [control]\nsocket = \"{d}/control.sock\"\n\
             [console]\nlisten = \"127.0.0.1:{port}\"\nusers = \"{d}/users.toml\"\n\
             operator_key = \"\"\ntls = false\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let since = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the console did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle_rss = rss_kib(pid, "VmRSS:");
    // Log in as a browser does: the login form's token, in the form and its cookie.
    let (_, head, body) = http(
        port,
        "GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let login_cookie = cookie(&head, "__Host-facegate-login").unwrap();
    let token = body
        .split("name=\"login\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let form = format!("login={token}&name=bench&password=bench-password-1");
    let (code, head, _) = http(
        port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {login_cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(code, 303, "login: {head}");
    let session = cookie(&head, "__Host-facegate=").unwrap();
    let mut times = std::collections::BTreeMap::new();
    for page in [
        "/people",
        "/people?q=Person+09",
        "/people/person-0500",
        "/audit",
        "/audit?event=deny",
        "/audit.csv",
    ] {
        let mut ms: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                let (code, _, body) = http(
                    port,
                    &format!(
                        "GET {page} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {session}\r\n\r\n"
                    ),
                );
                assert_eq!(code, 200, "{page}");
                assert!(!body.is_empty());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        times.insert(
            page,
            serde_json::json!({"median_ms": ms[ROUNDS / 2], "max_ms": ms[ROUNDS - 1]}),
        );
    }
    let busy_rss = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "people": PEOPLE,
            "decisions": DECISIONS,
            "files_made_s": prepared.as_secs_f64(),
            "rss_idle_mib": idle_rss as f64 / 1024.0,
            "rss_after_pages_mib": busy_rss as f64 / 1024.0,
            "rss_peak_mib": peak as f64 / 1024.0,
            "pages": times,
        }))
        .unwrap()
    );
}
