//! `facegate policy` (edits a person's access policy, says which rule refuses) and `facegate
//! audit query` / `verify` over a rotated log, as an admin runs them.

mod common;
use common::{facegate, text};
use facegate::records::audit::{AuditLog, AuditSink, Event, EventKind};
use facegate::records::rotation::{all_files, Rotation};
use facegate_e2e::fixture;
use std::time::{Duration, SystemTime};

#[test]
fn policy_edits_are_saved_and_the_refusing_rule_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let photo = fixture("obama.jpg");
    let out = facegate(
        &g,
        &["enroll", "--name", "Barack Obama", photo.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = "barack-obama";
    let out = facegate(&g, &["policy", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("allowed"), "{}", text(&out));
    assert!(!std::fs::read_to_string(&g).unwrap().contains("policy"));
    let out = facegate(&g, &["policy", id, "--disable"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refused: disabled"), "{}", text(&out));
    let out = facegate(
        &g,
        &[
            "policy",
            id,
            "--enable",
            "--until",
            "2001-01-01",
            "--window",
            "mon-fri 07:00-19:00",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refused: expired"), "{}", text(&out));
    let saved = std::fs::read_to_string(&g).unwrap();
    assert!(
        saved.contains("[person.policy]") && saved.contains("mon,tue,wed,thu,fri 07:00-19:00"),
        "{saved}"
    );
    let out = facegate(
        &g,
        &[
            "policy",
            id,
            "--until",
            "none",
            "--window",
            "daily 00:00-24:00",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allowed_now"], true, "{v}");
    assert_eq!(v["policy"]["windows"].as_array().unwrap().len(), 2);
    let out = facegate(&g, &["policy", id, "--window", "someday 7-9"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = facegate(&g, &["policy", "nobody", "--disable"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn audit_query_filters_a_rotated_log_and_verify_checks_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap().with_rotation(Rotation {
        max_bytes: 600,
        ..Rotation::default()
    });
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_996_800); // 2026-11-30T00:00Z
    let mut add = |h: u64, kind: EventKind, who: Option<&str>, reason: Option<&str>| {
        let mut e = Event::new(kind, t0 + Duration::from_secs(h * 3600), Duration::ZERO);
        e.identity = who.map(str::to_owned);
        e.reason = reason.map(str::to_owned);
        log.record(&e).unwrap();
    };
    add(8, EventKind::Grant, Some("ada"), None);
    add(9, EventKind::Deny, Some("unknown"), Some("unknown"));
    add(10, EventKind::ForcedOpen, None, Some("forced, \"really\""));
    add(11, EventKind::Deny, Some("ada"), Some("outside_schedule"));
    add(12, EventKind::Exit, None, None);
    add(13, EventKind::Grant, Some("bob"), None);
    drop(log);
    assert!(all_files(&path).len() >= 2, "rotated");
    let q = |args: &[&str]| {
        let o = facegate(
            &dir.path().join("g.toml"),
            &[&["audit", "query", "--log", path.to_str().unwrap()], args].concat(),
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let csv = q(&["--entries", "--csv"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "seq,time,event,identity,name,reason,nearest,distance"
    );
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(
        rows[1].starts_with("1,2026-11-30T08:00:00.000Z,grant,ada,"),
        "{csv}"
    );
    let json = q(&["--person", "ada", "--json"]);
    let events: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(events, ["grant", "deny"]);
    let alarms = q(&["--alarms", "--csv"]);
    assert!(alarms.contains("\"forced, \"\"really\"\"\""), "{alarms}");
    let window = q(&[
        "--denials",
        "--since",
        "2026-11-30T09:30:00Z",
        "--until",
        "2026-12-01",
    ]);
    assert!(
        window.contains("outside_schedule") && !window.contains(" unknown"),
        "{window}"
    );
    assert!(window.contains("1 event(s)"), "{window}");
    let o = facegate(
        &dir.path().join("g.toml"),
        &["audit", "verify", path.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("6 line(s) verified"), "{}", text(&o));
    // A rotated file removed from the middle breaks the chain at the line after the gap.
    let files = all_files(&path);
    assert!(files.len() >= 3, "{files:?}");
    std::fs::remove_file(&files[1]).unwrap();
    let o = facegate(
        &dir.path().join("g.toml"),
        &["audit", "verify", path.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("removed"), "{}", text(&o));
}

#[test]
fn audit_verify_says_when_a_log_starts_mid_chain_and_checks_a_kept_head() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.toml");
    let path = dir.path().join("audit.jsonl");
    let p = path.to_str().unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    for k in [
        EventKind::Start,
        EventKind::Grant,
        EventKind::Deny,
        EventKind::Exit,
    ] {
        log.record(&Event::new(k, SystemTime::now(), Duration::ZERO))
            .unwrap();
    }
    drop(log);
    // The head, as an admin keeps it: text and JSON.
    let o = facegate(&g, &["audit", "head", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let head_text = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(head_text.starts_with("4:"), "{head_text}");
    let anchor = head_text.split_whitespace().next().unwrap().to_owned();
    let o = facegate(&g, &["audit", "head", "--json", p]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["seq"], 4, "{v}");
    assert_eq!(v["file"], p, "{v}");
    let head_file = dir.path().join("head.json");
    std::fs::write(&head_file, &o.stdout).unwrap();
    let o = facegate(&g, &["audit", "verify", "--head", &anchor, p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("holds the anchored head 4:"),
        "{}",
        text(&o)
    );
    let all = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = all.split_inclusive('\n').collect();
    // The last line cut off: the chain alone cannot tell, the kept head can.
    std::fs::write(&path, lines[..3].concat()).unwrap();
    let o = facegate(&g, &["audit", "verify", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let head_arg = head_file.to_str().unwrap();
    let o = facegate(&g, &["audit", "verify", "--head-file", head_arg, p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "CUT OR REWRITTEN: the anchored head seq 4 is not in the log (it ends at seq 3)"
        ),
        "{}",
        text(&o)
    );
    // The first two lines removed and the new first one edited: not vouched for (exit 3).
    let edited = lines[2..].concat().replacen("\"deny\"", "\"grant\"", 1);
    std::fs::write(&path, edited).unwrap();
    let o = facegate(&g, &["audit", "verify", p]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o)
            .contains("starts at seq 3: earlier lines missing, cannot vouch for the first line"),
        "{}",
        text(&o)
    );
    // A head that is not one is an error, not a verdict.
    let o = facegate(&g, &["audit", "verify", "--head", "4:xyz", p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
