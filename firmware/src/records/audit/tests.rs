//! Tests of `audit`.

use super::*;
use std::time::{Duration, SystemTime};

fn ev(kind: EventKind, t: u64) -> Event {
    Event::new(kind, SystemTime::UNIX_EPOCH, Duration::from_secs(t))
}

#[test]
fn a_log_ending_at_the_largest_seq_is_continued_without_a_panic() {
    // Found writing the audit fuzz target (fuzz/regressions/audit): `seq + 1` overflowed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let last = format!("{{\"seq\":{},\"hash\":\"{}\"}}\n", u64::MAX, "a".repeat(64));
    std::fs::write(&path, last).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Start, 0)).unwrap();
    let v = verify(&path).unwrap();
    assert_eq!(v.broken, None);
    assert_eq!((v.chained, v.continues_at), (2, Some(u64::MAX)));
}

#[test]
fn appends_whole_lines_and_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let mut g = ev(EventKind::Grant, 1);
    g.identity = Some("ada".into());
    g.distance = Some(0.41);
    log.record(&g).unwrap();
    log.record(&ev(EventKind::Deny, 2)).unwrap();
    drop(log);
    // Reopening appends; nothing is rewritten.
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Stop, 3)).unwrap();
    let back = read_log(&path).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[0], g);
    assert_eq!(back[0].time, "1970-01-01T00:00:00.000Z");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_torn_last_line_is_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Grant, 1)).unwrap();
    drop(log);
    // What power loss during a write can leave: half a line, or zeros.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"time\":\"2026-11-").unwrap();
    f.write_all(&[0u8; 100]).unwrap();
    drop(f);
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Deny, 2)).unwrap();
    let back = read_log(&path).unwrap();
    assert_eq!(
        back.iter().map(|e| e.event).collect::<Vec<_>>(),
        vec![EventKind::Grant, EventKind::Deny]
    );
}

#[test]
fn a_file_of_only_a_torn_line_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Start, 0)).unwrap();
    assert_eq!(read_log(&path).unwrap().len(), 1);
}

fn log_of(path: &Path, kinds: &[EventKind]) {
    let mut log = AuditLog::open(path).unwrap();
    for (i, k) in kinds.iter().enumerate() {
        log.record(&ev(*k, i as u64)).unwrap();
    }
}

#[test]
fn lines_are_chained_across_reopens_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_of(&path, &[EventKind::Start, EventKind::Grant]);
    log_of(&path, &[EventKind::Deny, EventKind::Stop]);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[3].starts_with("{\"seq\":4,"), "{}", lines[3]);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(v["clock_synced"].is_boolean(), "{v}");
    assert_eq!(v["boot_id"].as_str().unwrap().len(), 36, "{v}");
    let r = verify(&path).unwrap();
    assert_eq!((r.chained, r.unchained, r.broken), (4, 0, None));
    // Events still read back as events.
    assert_eq!(read_log(&path).unwrap()[1].event, EventKind::Grant);
}

#[test]
fn verify_names_the_first_edited_or_removed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_of(
        &path,
        &[
            EventKind::Start,
            EventKind::Deny,
            EventKind::Grant,
            EventKind::Stop,
        ],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let edited = text.replacen("\"deny\"", "\"grant\"", 1);
    std::fs::write(&path, edited).unwrap();
    let r = verify(&path).unwrap();
    assert_eq!(r.broken.as_ref().map(|b| b.0), Some(2), "{r:?}");
    assert!(r.broken.unwrap().1.contains("edited"));
    // The third line removed: the break is at the line after the gap.
    let removed = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
    std::fs::write(&path, removed).unwrap();
    let r = verify(&path).unwrap();
    let (n, why) = r.broken.unwrap();
    assert_eq!(n, 3);
    assert!(
        why.contains("seq 4 follows seq 2: 1 line(s) removed"),
        "{why}"
    );
    // A line without a chain slipped in after chained ones.
    let inserted = format!("{}\n{{\"event\":\"grant\"}}\n{}\n", lines[0], lines[1]);
    std::fs::write(&path, inserted).unwrap();
    assert_eq!(verify(&path).unwrap().broken.unwrap().0, 2);
}

#[test]
fn old_unchained_lines_are_counted_not_errors_and_a_chain_follows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let old = serde_json::to_string(&ev(EventKind::Stop, 1)).unwrap();
    std::fs::write(&path, format!("{old}\n{old}\n")).unwrap();
    log_of(&path, &[EventKind::Start]);
    let r = verify(&path).unwrap();
    assert_eq!((r.chained, r.unchained, r.broken), (1, 2, None));
    // A file that starts in the middle of a chain (the earlier part rotated away).
    let text = std::fs::read_to_string(&path).unwrap();
    log_of(&path, &[EventKind::Grant, EventKind::Stop]);
    let all = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &all[text.len()..]).unwrap();
    let r = verify(&path).unwrap();
    assert_eq!((r.chained, r.continues_at, r.broken), (2, Some(2), None));
}

#[test]
fn rotation_by_size_keeps_whole_lines_and_the_chain_goes_on_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rot = crate::records::rotation::Rotation {
        max_bytes: 700,
        ..Default::default()
    };
    let mut log = AuditLog::open(&path).unwrap().with_rotation(rot);
    for i in 0..20 {
        log.record(&ev(EventKind::Deny, i)).unwrap();
    }
    drop(log);
    let files = crate::records::rotation::all_files(&path);
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 700, "{} is {len} bytes", f.display());
    }
    let seqs: Vec<u64> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    let r = verify_files(&files).unwrap();
    assert_eq!((r.chained, r.broken, r.continues_at), (20, None, None));
    assert_eq!(read_all(&path).unwrap().len(), 20);
    // A crash right after the rename, before the new file: the chain continues.
    crate::records::rotation::rotate(&path, SystemTime::now()).unwrap();
    assert!(!path.exists());
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(
        log.previous_run().unwrap().last_event,
        Some(EventKind::Deny)
    );
    log.record(&ev(EventKind::Start, 30)).unwrap();
    let files = crate::records::rotation::all_files(&path);
    assert_eq!(verify_files(&files).unwrap().chained, 21);
}

#[test]
fn daily_rotation_at_the_first_event_of_a_new_utc_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rot = crate::records::rotation::Rotation {
        daily: true,
        ..Default::default()
    };
    let day = |d: u64, h: u64| {
        Event::new(
            EventKind::Grant,
            SystemTime::UNIX_EPOCH + Duration::from_secs(d * 86_400 + h * 3600),
            Duration::ZERO,
        )
    };
    let mut log = AuditLog::open(&path).unwrap().with_rotation(rot);
    log.record(&day(1, 1)).unwrap();
    log.record(&day(1, 23)).unwrap();
    drop(log);
    let mut log = AuditLog::open(&path).unwrap().with_rotation(rot);
    log.record(&day(2, 0)).unwrap();
    log.record(&day(2, 5)).unwrap();
    let files = crate::records::rotation::all_files(&path);
    assert_eq!(files.len(), 2);
    assert_eq!(read_log(&files[0]).unwrap().len(), 2);
    assert_eq!(read_log(&files[1]).unwrap().len(), 2);
    assert_eq!(verify_files(&files).unwrap().chained, 4);
}

#[test]
fn the_previous_run_is_known_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    assert_eq!(
        AuditLog::open(&path).unwrap().previous_run(),
        Some(PreviousRun::default())
    );
    log_of(&path, &[EventKind::Start, EventKind::Grant]);
    let p = AuditLog::open(&path).unwrap().previous_run().unwrap();
    assert_eq!(p.last_event, Some(EventKind::Grant));
    assert_eq!(p.repaired_bytes, 0);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"seq\":3,\"ti").unwrap();
    drop(f);
    let p = AuditLog::open(&path).unwrap().previous_run().unwrap();
    assert_eq!(
        (p.last_event, p.repaired_bytes),
        (Some(EventKind::Grant), 12)
    );
    // The chain goes on after the cut: the torn line is gone, not a gap.
    log_of(&path, &[EventKind::Stop]);
    assert_eq!(verify(&path).unwrap().broken, None);
}

#[test]
fn a_log_that_cannot_be_opened_yet_fails_each_event_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later/audit.jsonl");
    let mut log = AuditLog::open_or_later(&path);
    assert!(log.record(&ev(EventKind::Start, 0)).is_err());
    std::fs::create_dir(dir.path().join("later")).unwrap();
    log.record(&ev(EventKind::Grant, 1)).unwrap();
    assert_eq!(read_log(&path).unwrap().len(), 1);
}

#[test]
fn an_unwritable_place_is_a_clear_error() {
    let err = AuditLog::open(Path::new("/nonexistent-dir/audit.jsonl"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent-dir/audit.jsonl"), "{err}");
}
