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
    assert_eq!((r.chained, r.continues_at, &r.broken), (2, Some(2), &None));
    // Nothing vouches for that first line.
    assert_eq!(r.status(), Status::Unvouched);
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

#[test]
fn the_chain_goes_on_after_a_last_line_longer_than_any_read_window() {
    // Security review finding 1: only the last 64 KiB were read to continue the chain, so after
    // a longer line the next event started again at seq 1 and `verify` said BROKEN.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    log.record(&ev(EventKind::Start, 0)).unwrap();
    drop(log);
    // A chained line of 70 KB (as an older version wrote for a long reason): chain it by hand.
    let text = std::fs::read_to_string(&path).unwrap();
    let (_, prev) = split_hash(text.trim_end()).unwrap();
    let body = format!(
        "{{\"seq\":2,\"time\":\"1970-01-01T00:00:00.000Z\",\"t\":1.0,\"event\":\"deny\",\"reason\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let hash = chain_hash(prev, &body);
    let long = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(long.as_bytes()).unwrap();
    drop(f);
    assert_eq!(verify(&path).unwrap().broken, None);
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(
        log.previous_run().unwrap().last_event,
        Some(EventKind::Deny)
    );
    log.record(&ev(EventKind::Stop, 2)).unwrap();
    let r = verify(&path).unwrap();
    assert_eq!((r.chained, &r.broken), (3, &None), "{r:?}");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .starts_with("{\"seq\":3,"));
}

#[test]
fn text_fields_are_capped_and_control_characters_escaped_at_record_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let mut e = ev(EventKind::CommandRefused, 1);
    // Attacker text: a giant reason, and a name that tries to end the line and start a forged one
    // (or to move a terminal's cursor when `facegate audit query` prints it).
    e.reason = Some("A".repeat(100_000));
    e.identity = Some("mallory\n{\"seq\":99,\"event\":\"grant\"}\r\u{1b}[2K\u{202e}".into());
    e.name = Some("Zoë".repeat(300));
    e.nearest = Some("ok-id".into());
    log.record(&e).unwrap();
    log.record(&ev(EventKind::Stop, 2)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.len() < 8 * 1024, "{} bytes", text.len());
    let back = &read_log(&path).unwrap()[0];
    let reason = back.reason.as_deref().unwrap();
    assert!(
        reason.ends_with(TRUNCATED),
        "{}",
        &reason[reason.len() - 40..]
    );
    assert_eq!(reason.chars().count(), MAX_TEXT + TRUNCATED.chars().count());
    let who = back.identity.as_deref().unwrap();
    assert!(!who.chars().any(|c| c.is_control()), "{who:?}");
    assert!(who.starts_with("mallory\\n{\"seq\":99"), "{who}");
    assert!(who.contains("\\r\\u{1b}[2K\\u{202e}"), "{who}");
    let name = back.name.as_deref().unwrap();
    assert!(
        name.starts_with("ZoëZoë") && name.ends_with(TRUNCATED),
        "{name}"
    );
    assert_eq!(back.nearest.as_deref(), Some("ok-id"));
    assert_eq!(verify(&path).unwrap().chained, 2);
    // Text that needs nothing is written as given.
    assert_eq!(
        Event::bounded(&e).identity.as_deref().map(str::len),
        back.identity.as_deref().map(str::len)
    );
    let plain = ev(EventKind::Grant, 3);
    assert!(matches!(plain.bounded(), std::borrow::Cow::Borrowed(_)));
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_log_cut_at_its_start_and_its_new_first_line_edited_is_not_vouched_for() {
    // Security review finding 2: the first lines removed and the new first line edited was
    // trusted from there ("continues an earlier file") and verified.
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
    assert_eq!(verify(&path).unwrap().status(), Status::Verified);
    let lines = lines_of(&path);
    let rest = lines[2..].concat().replacen("\"grant\"", "\"exit\"", 1);
    std::fs::write(&path, rest).unwrap();
    let r = verify(&path).unwrap();
    assert_eq!((r.chained, r.continues_at, &r.broken), (2, Some(3), &None));
    assert_eq!(r.status(), Status::Unvouched);
}

#[test]
fn each_rotated_file_must_continue_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rot = crate::records::rotation::Rotation {
        max_bytes: 700,
        ..Default::default()
    };
    let mut log = AuditLog::open(&path).unwrap().with_rotation(rot);
    for i in 0..12 {
        log.record(&ev(EventKind::Deny, i)).unwrap();
    }
    drop(log);
    let files = crate::records::rotation::all_files(&path);
    assert!(files.len() >= 4, "{files:?}");
    let r = verify_files(&files).unwrap();
    assert_eq!((r.chained, r.status()), (12, Status::Verified));
    assert_eq!(r.head.as_ref().map(|h| h.seq), Some(12));
    // The oldest file gone (as retention deletes it): nothing vouches for the new first line.
    let r = verify_files(&files[1..]).unwrap();
    assert_eq!(r.status(), Status::Unvouched);
    assert!(r.continues_at.is_some_and(|s| s > 1), "{r:?}");
    // A file gone from the middle: the next one does not continue the one before it.
    let gap = [&files[..1], &files[2..]].concat();
    let r = verify_files(&gap).unwrap();
    assert_eq!(r.status(), Status::Broken);
    let (_, why) = r.broken.unwrap();
    assert!(why.starts_with("does not continue"), "{why}");
    assert!(why.contains("removed before it"), "{why}");
    assert_eq!(r.broken_in, Some((files[2].clone(), 1)));
}

#[test]
fn the_head_is_the_last_whole_chained_line_of_the_newest_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    assert_eq!(head(&path).unwrap(), None);
    log_of(&path, &[EventKind::Start, EventKind::Grant]);
    let last = lines_of(&path).pop().unwrap();
    let (_, hash) = split_hash(last.trim_end()).unwrap();
    let h = head(&path).unwrap().unwrap();
    assert_eq!(
        h,
        Head {
            seq: 2,
            hash: hash.to_owned()
        }
    );
    // A torn tail (a write under way, or power loss) is not the head.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"seq\":3,\"ti").unwrap();
    drop(f);
    assert_eq!(head(&path).unwrap(), Some(h.clone()));
    // Just rotated (the active file empty or not there yet): the newest rotated file's.
    let to = crate::records::rotation::rotate(&path, SystemTime::now()).unwrap();
    assert_eq!(head_in(&path).unwrap(), Some((h.clone(), to.clone())));
    std::fs::write(&path, "").unwrap();
    assert_eq!(head(&path).unwrap(), Some(h.clone()));
    // What `facegate audit head` prints reads back, as text or JSON.
    assert_eq!(Head::parse(&format!("{h} {}\n", to.display())).unwrap(), h);
    let json = serde_json::json!({"seq": 2, "hash": h.hash.to_uppercase(), "file": "x"});
    assert_eq!(Head::parse(&json.to_string()).unwrap(), h);
    for bad in ["", "2", "2:abc", "x:{}", "{\"seq\":2}"] {
        assert!(Head::parse(bad).is_err(), "{bad}");
    }
    let err = Head::parse(&"\u{1b}".repeat(10_000))
        .unwrap_err()
        .to_string();
    assert!(err.len() < 400 && !err.contains('\u{1b}'), "{err}");
}

#[test]
fn a_kept_head_shows_a_cut_tail_and_a_rebuilt_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let kinds = [
        EventKind::Start,
        EventKind::Grant,
        EventKind::Deny,
        EventKind::Stop,
    ];
    log_of(&path, &kinds);
    let anchored = head(&path).unwrap().unwrap();
    log_of(&path, &[EventKind::Start]);
    let files = crate::records::rotation::all_files(&path);
    // Lines after the head are what happened since: fine.
    let r = verify_anchored(&files, Some(&anchored)).unwrap();
    assert_eq!(
        (r.anchor.clone(), r.status()),
        (Some(Anchor::Found), Status::Verified)
    );
    // The last three lines cut off: the chain alone still verifies; the head does not.
    let lines = lines_of(&path);
    std::fs::write(&path, lines[..2].concat()).unwrap();
    assert_eq!(verify(&path).unwrap().status(), Status::Verified);
    let r = verify_anchored(&files, Some(&anchored)).unwrap();
    assert_eq!(r.anchor, Some(Anchor::Missing { last: Some(2) }));
    assert_eq!(r.status(), Status::Broken);
    // Rebuilt from scratch with other events, as long or longer: a different hash at that seq.
    std::fs::remove_file(&path).unwrap();
    log_of(&path, &[EventKind::Start, EventKind::Deny, EventKind::Deny]);
    log_of(&path, &[EventKind::Stop, EventKind::Start]);
    assert_eq!(verify(&path).unwrap().status(), Status::Verified);
    let r = verify_anchored(&files, Some(&anchored)).unwrap();
    assert!(matches!(r.anchor, Some(Anchor::Differs { .. })), "{r:?}");
    assert_eq!(r.status(), Status::Broken);
    // Emptied.
    std::fs::write(&path, "").unwrap();
    let r = verify_anchored(&files, Some(&anchored)).unwrap();
    assert_eq!(r.anchor, Some(Anchor::Missing { last: None }));
    // A head older than the first line present (its file deleted): cannot be checked.
    std::fs::remove_file(&path).unwrap();
    log_of(&path, &kinds);
    log_of(&path, &kinds);
    let lines = lines_of(&path);
    std::fs::write(&path, lines[5..].concat()).unwrap();
    let r = verify_anchored(&files, Some(&anchored)).unwrap();
    assert_eq!(r.anchor, Some(Anchor::Gone { first: 6 }));
    assert_eq!(r.status(), Status::Unvouched);
}
