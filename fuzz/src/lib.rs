//! Fuzz target bodies: every parser the door (`facegated`) or the CLI reads from outside, fed
//! arbitrary bytes. Each must return an error, never panic or hang, and what it accepts must be
//! usable (the checks below are what the door relies on next).
//!
//! The libFuzzer binaries in `fuzz_targets/` call these; `tests/replay.rs` runs them on the seed
//! corpus and on every input a campaign found (`regressions/`), in a plain build.

use facegate::config::Config;
use facegate::people::gallery::{Gallery, Scoring};
use facegate::records::audit::{self, AuditLog, AuditSink, Event, EventKind};
use facegate::vision::decode;
use facegate::vision::frame;
use facegate::Embedding;
use facegate_sim::Scenario;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A target's body: one input, any bytes.
pub type Target = fn(&[u8]);

/// The targets by name, as `scripts/fuzz` and the replay test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode", decode),
    ("frame", frame),
    ("gallery", gallery),
    ("config", config),
    ("scenario", scenario),
    ("audit", audit),
    ("manifest", manifest),
    ("control", control),
    ("site", site),
    ("console", console),
];

/// libFuzzer's panic hook aborts on every panic, even one the code under test catches: the
/// decoders' panics that facegate contains (`decode::contained`) are not crashes, so the
/// default hook is put back (a panic that escapes still aborts in libfuzzer-sys's wrapper).
fn contained_panics_are_not_crashes() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = std::panic::take_hook();
    });
}

/// An image file (enrolment photo, `facegate identify`): headers and the whole decode.
pub fn decode(data: &[u8]) {
    contained_panics_are_not_crashes();
    if let Ok(img) = decode::decode_bytes(data) {
        let (w, h) = img.dimensions();
        assert!(w > 0 && h > 0 && w <= decode::MAX_SIDE && h <= decode::MAX_SIDE);
    }
}

/// A camera frame: the first byte picks MJPEG or YUYV; for YUYV the next four bytes are the
/// width and height the driver negotiated (little-endian u16 each), the rest the buffer.
pub fn frame(data: &[u8]) {
    contained_panics_are_not_crashes();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The daemon reuses one output image across frames: start from a previous frame's size.
    let mut out = RgbImage::new(4, 2);
    if mode & 1 == 0 {
        if frame::mjpeg_to_rgb(rest, &mut out).is_ok() {
            assert!(out.width() > 0 && out.height() > 0);
        }
    } else if rest.len() >= 4 {
        let w = u32::from(u16::from_le_bytes([rest[0], rest[1]]));
        let h = u32::from(u16::from_le_bytes([rest[2], rest[3]]));
        if frame::yuyv_to_rgb(&rest[4..], w, h, &mut out).is_ok() {
            assert_eq!(out.dimensions(), (w, h));
        }
    }
}

/// The gallery file (`gallery.toml`), read by the door at start and on every change: a gallery
/// it accepts must be searchable and must save and load again unchanged.
pub fn gallery(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("gallery.toml");
    let Ok(g) = Gallery::parse_any_model(text, path) else {
        return;
    };
    let query = g
        .people
        .iter()
        .flat_map(|p| &p.enrolments)
        .next()
        .map(|e| Embedding(e.embedding.clone()));
    for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
        let index = g.index(scoring);
        if let Some(q) = &query {
            let _ = index.best(q);
        }
    }
    let saved = toml::to_string(&g).expect("an accepted gallery serialises");
    let again = Gallery::parse(&saved, path, &g.model).expect("a saved gallery loads again");
    assert_eq!(again, g, "a saved gallery loads back unchanged");
}

/// The daemon's config file (`config.toml`), at start and on SIGHUP.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("config.toml")) {
        let _ = c.warnings();
        let _ = c.decision_params(0.5, 0.05);
    }
}

/// A simulator scenario, and the config and gallery texts it carries.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = Scenario::parse(text, Path::new("s.toml"), Path::new("/nonexistent")) else {
        return;
    };
    for st in &s.step {
        if let Some((_, interval)) = st.frames_and_interval(s.fps) {
            assert!(interval > Duration::ZERO);
        }
        if let Some(t) = &st.config_text {
            let _ = Config::parse(t, Path::new("config.toml"));
        }
        if let Some(t) = &st.gallery_text {
            let _ = Gallery::parse_any_model(t, Path::new("gallery.toml"));
        }
    }
    if let Ok(t) = toml::to_string(&s.config) {
        let _ = Config::parse(&t, Path::new("config.toml"));
    }
}

/// A model manifest (`recognition.models`): read by the door at start and by the CLI.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = facegate::Manifest::parse(text, "manifest.toml") {
        assert!(m.embedders.contains_key(&m.default_embedder));
    }
}

/// One scratch file on a RAM disk if there is one (each run rewrites it).
fn scratch() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a scratch directory");
        let path = dir.path().join("audit.jsonl");
        (dir, path)
    });
    path
}

/// An audit log left by a previous run (torn by a power loss, edited, or not ours): the daemon
/// opens it (cutting a torn tail), appends, and `facegate audit` reads and verifies it. After the
/// append the file must end with the new event as a whole line of its own.
pub fn audit(data: &[u8]) {
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch log");
    let _ = audit::read_log(path);
    let _ = audit::verify(path);
    let Ok(mut log) = AuditLog::open(path) else {
        return;
    };
    let _ = log.previous_run();
    // What `facegate audit verify` says of the log as the daemon found it (torn tail cut off).
    let before = audit::verify(path).expect("verify the scratch log");
    let event = Event::new(EventKind::Start, SystemTime::UNIX_EPOCH, Duration::ZERO);
    log.record(&event).expect("append to the scratch log");
    drop(log);
    let bytes = std::fs::read(path).expect("read the scratch log");
    assert!(bytes.ends_with(b"\n"));
    let body = &bytes[..bytes.len() - 1];
    let last = &body[body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)..];
    let back: Event = serde_json::from_slice(last).expect("the appended line is whole JSON");
    assert_eq!(back.event, EventKind::Start);
    // The head (what the site link publishes) is the line just appended.
    let v: serde_json::Value = serde_json::from_slice(last).expect("the appended line");
    let head = audit::head(path)
        .expect("read the head")
        .expect("the appended line is chained");
    assert_eq!(Some(head.seq), v["seq"].as_u64());
    assert!(last.ends_with(format!(",\"hash\":\"{}\"}}", head.hash).as_bytes()));
    let after = audit::verify(path).expect("verify the scratch log");
    if before.broken.is_none() {
        // The daemon's append never breaks a log that verified.
        assert_eq!(after.broken, None, "an append broke a whole chain");
        assert_eq!(
            after.chained + after.unchained,
            before.chained + before.unchained + 1
        );
    }
}

/// A request line of the door's local control API (`facegate door`, the site link, the
/// console): what it accepts names a command whose `by` is safe to record (no separator,
/// quote or control character can reach the audit log), and its errors are short and escaped.
pub fn control(data: &[u8]) {
    use facegate::door::control_api::{parse, Command, MAX_DISMISS_LINE, MAX_LINE, MAX_SITE_LINE};
    match parse(data) {
        Ok(cmd) => {
            let by = match &cmd {
                Command::SiteCommand(_) => {
                    assert!(data.len() <= MAX_SITE_LINE);
                    None
                }
                Command::Unlock { by }
                | Command::Lockdown { by, .. }
                | Command::Reload { by }
                | Command::SiteReset { by }
                | Command::PeopleAdd { by, .. }
                | Command::PeopleRemove { by, .. }
                | Command::PeopleRename { by, .. }
                | Command::PeoplePolicy { by, .. }
                | Command::PeopleCredential { by, .. } => Some(by),
                Command::PicturesDismiss { seqs, by } => {
                    assert!(data.len() <= MAX_DISMISS_LINE);
                    assert!((1..=100).contains(&seqs.len()));
                    Some(by)
                }
                Command::Picture(_) | Command::PicturesUnknown | Command::SitePicture(_) => None,
                Command::Status
                | Command::Events
                | Command::Help
                | Command::SiteGallery(_)
                | Command::SiteRefused { .. }
                | Command::Operator(_)
                | Command::View
                | Command::Snapshot => None,
                // Made by the server only: no line may ever parse to these.
                Command::Checked { .. }
                | Command::SiteStartup(_)
                | Command::SiteWasReset { .. }
                | Command::OperatorRefused { .. }
                | Command::SitePictureSent { .. }
                | Command::PeopleChanged { .. } => panic!("parsed a server-made request: {cmd:?}"),
            };
            if !matches!(
                cmd,
                Command::SiteCommand(_) | Command::PicturesDismiss { .. }
            ) {
                assert!(data.len() <= MAX_LINE);
            }
            if let Some(by) = by {
                assert!((1..=64).contains(&by.len()));
                assert!(by
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)));
            }
        }
        Err(e) => {
            assert!(e.len() <= 200, "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }
}

/// A site message as the door judges it (`site::trust`): any bytes, as a command and as a
/// gallery, never panic; a refusal's text is the door's own words (no byte of the input
/// longer than a few characters, no control characters), and nothing unsigned is taken.
pub fn site(data: &[u8]) {
    use facegate::site::trust::{Accepted, SiteTrust};
    use facegate::site::MqttConfig;
    thread_local! {
        static DOOR: (tempfile::TempDir, MqttConfig) = {
            let dir = tempfile::tempdir().unwrap();
            let key = facegate::site::signing::SiteKey::generate().unwrap();
            let public = dir.path().join("site.pub");
            key.save(&dir.path().join("site.key"), &public).unwrap();
            let cfg = MqttConfig {
                site_key: Some(public),
                commands: true,
                max_people: 4,
                ..MqttConfig::default()
            };
            (dir, cfg)
        };
    }
    DOOR.with(|(dir, cfg)| {
        let gallery = dir.path().join("gallery.toml");
        let (mut trust, _) = SiteTrust::open(cfg, &gallery, "fp").unwrap().unwrap();
        let now = 1_800_000_000_000;
        for result in [trust.command(data, now), trust.gallery(data, now)] {
            match result {
                // No valid signature can come from random bytes: only "for another door".
                Ok(a) => assert_eq!(a, Accepted::Nothing, "took unsigned input"),
                Err(r) => {
                    let text = r.to_string();
                    assert!(text.len() <= 200, "{text}");
                    assert!(!text.chars().any(char::is_control), "{text:?}");
                }
            }
        }
    });
}

/// What the web console parses from a browser or its own files (`facegate::console::forms`,
/// the users file): the first byte picks the parser, the rest is its input.
pub fn console(data: &[u8]) {
    use facegate::console::forms;
    use facegate::console::users::{valid_name, Users};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 6 {
        0 => {
            if let Ok(form) = forms::parse_form(rest) {
                assert!(rest.len() <= forms::MAX_FORM);
                assert!(form.0.len() <= forms::MAX_FIELDS);
                // The access and card forms: what they accept, the door accepts too.
                if let Ok(r) = forms::policy(&form) {
                    assert!(r.windows.len() <= facegate::people::policy::MAX_WINDOWS);
                    assert!(r.to_policy().is_ok(), "{r:?}");
                }
                if let Ok(Some(c)) = forms::credential(&form) {
                    assert!(c.check().is_ok() && c.wiegand_frame().is_ok(), "{c:?}");
                }
            }
        }
        1 => {
            if let Some(v) = forms::cookie(&text, "__Host-facegate") {
                assert!(!v.contains(';'));
                assert!(text.contains(v));
            }
        }
        2 => {
            if let Ok(users) = Users::parse(&text) {
                for u in &users.users {
                    assert!(valid_name(&u.name), "{:?}", u.name);
                }
            }
        }
        3 => {
            if let Some(n) = forms::seq(&text) {
                assert!(text.bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(
                    n.to_string().trim_start_matches('0'),
                    text.trim_start_matches('0')
                );
            }
            if let Some(v) = forms::seqs(&text, 100) {
                assert!(!v.is_empty() && v.len() <= 100);
            }
        }
        4 => {
            let cell = forms::csv_cell(&text);
            let bare = cell.strip_prefix('"').unwrap_or(&cell);
            assert!(
                !bare.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
        _ => {
            if let Some(n) = forms::display_name(&text) {
                assert!(!n.is_empty() && !n.chars().any(char::is_control));
            }
        }
    }
}
