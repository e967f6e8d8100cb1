//! The audit log survives being killed during rotation: a writer process rotating at almost
//! every line is SIGKILLed again and again and restarted; afterwards every event it was told
//! about is in the set of files exactly once, in order, and the hash chain verifies across them.

use facegate::records::audit::{verify_files, AuditLog, AuditSink, Event, EventKind};
use facegate::records::rotation::{all_files, Rotation};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const CHILD: &str = "FACEGATE_ROTATION_CHILD";

/// In the child: appends events with rotation every few lines until killed. Each event's
/// `frames` is its own seq, so a duplicate or a gap shows.
#[test]
fn rotation_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let path = Path::new(&dir).join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap().with_rotation(Rotation {
        max_bytes: 600,
        daily: false,
        retention_days: 0,
        keep_rotated: 0,
    });
    let mut n = log
        .previous_run()
        .and(facegate::records::audit::read_all(&path).ok())
        .map_or(0, |v| v.len() as u32);
    loop {
        n += 1;
        let mut ev = Event::new(EventKind::Deny, SystemTime::now(), Duration::ZERO);
        ev.frames = Some(n);
        log.record(&ev).unwrap();
    }
}

#[test]
fn killed_during_rotation_every_event_is_kept_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..25u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "rotation_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Varying delays land the kill at different points of the write/rotate cycle.
        std::thread::sleep(Duration::from_millis(20 + (round * 37) % 90));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let path = dir.path().join("audit.jsonl");
    let files = all_files(&path);
    assert!(files.len() > 10, "rotated only {} times", files.len());
    let mut seqs = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: torn line {line:?}: {e}", f.display()));
            let seq = v["seq"].as_u64().unwrap();
            // The writer numbers events from what it read back: seq and number agree.
            assert_eq!(v["frames"].as_u64(), Some(seq), "{line}");
            seqs.push(seq);
        }
    }
    assert!(seqs.len() > 50, "{}", seqs.len());
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let r = verify_files(&files).unwrap();
    assert_eq!(r.broken, None);
    assert_eq!(r.chained, seqs.len() as u64);
}
