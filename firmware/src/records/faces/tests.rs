//! Tests of the decision pictures' store: names, retention, the size cap, the rate bound.

use super::*;
use std::os::unix::fs::PermissionsExt;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really";

fn store() -> (tempfile::TempDir, FaceStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = FaceStore::for_audit(&dir.path().join("audit.jsonl"));
    (dir, s)
}

fn age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

#[test]
fn pictures_are_kept_beside_the_log_0600_and_read_back_by_seq_only() {
    let (dir, s) = store();
    assert_eq!(s.dir(), dir.path().join("faces"));
    let p = s.write(7, "alice", PNG).unwrap();
    assert_eq!(p, dir.path().join("faces/7-alice.png"));
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
    assert_eq!(s.read(7).unwrap().as_deref(), Some(PNG));
    assert_eq!(s.read(8).unwrap(), None);
    // An id that is not a gallery id never becomes a file name.
    assert!(s.write(9, "../x", PNG).is_err());
    assert!(s.write(9, "", PNG).is_err());
    // Foreign files in the directory are not pictures.
    std::fs::write(s.dir().join("notes.txt"), "x").unwrap();
    std::fs::write(s.dir().join("x-alice.png"), "x").unwrap();
    std::fs::write(s.dir().join(".gallery-tmp"), "x").unwrap();
    let all = s.pictures().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
}

#[test]
fn a_seq_reused_by_a_new_log_replaces_the_old_picture() {
    let (_dir, s) = store();
    s.write(3, "alice", b"old").unwrap();
    s.write(3, UNKNOWN, b"new").unwrap();
    assert_eq!(s.pictures().unwrap().len(), 1);
    assert_eq!(s.read(3).unwrap().as_deref(), Some(&b"new"[..]));
}

#[test]
fn unknown_lists_newest_first_and_dismiss_deletes_only_unknown_faces() {
    let (_dir, s) = store();
    for seq in 1..=5 {
        s.write(seq, UNKNOWN, PNG).unwrap();
    }
    s.write(6, "bob", PNG).unwrap();
    assert_eq!(s.unknown(500).unwrap(), vec![5, 4, 3, 2, 1]);
    assert_eq!(s.unknown(2).unwrap(), vec![5, 4]);
    assert_eq!(s.delete_seqs(&[2, 4, 6, 99], true).unwrap(), 2);
    assert_eq!(s.unknown(500).unwrap(), vec![5, 3, 1]);
    assert!(
        s.read(6).unwrap().is_some(),
        "bob's picture is not an unknown face"
    );
}

/// The site link's `site picture` reads through `read_unknown`: a named person's picture is
/// never read that way, whatever seq is asked.
#[test]
fn read_unknown_never_reads_a_named_persons_picture() {
    let (_dir, s) = store();
    s.write(1, UNKNOWN, PNG).unwrap();
    s.write(2, "bob", PNG).unwrap();
    assert_eq!(s.read_unknown(1).unwrap().as_deref(), Some(PNG));
    assert_eq!(s.read_unknown(2).unwrap(), None);
    assert_eq!(s.read_unknown(3).unwrap(), None);
    assert!(s.read(2).unwrap().is_some());
}

#[test]
fn a_persons_pictures_go_with_them() {
    let (_dir, s) = store();
    s.write(1, "bob", PNG).unwrap();
    s.write(2, "bob", PNG).unwrap();
    s.write(3, "bobby", PNG).unwrap();
    s.write(4, UNKNOWN, PNG).unwrap();
    assert_eq!(s.remove_person("bob").unwrap(), 2);
    let left: Vec<u64> = s.pictures().unwrap().iter().map(|p| p.seq).collect();
    assert_eq!(left, vec![3, 4]);
}

#[test]
fn the_sweep_deletes_pictures_past_their_days_then_the_oldest_over_the_cap() {
    let (_dir, s) = store();
    let keep_all = Retention {
        days: 30,
        max_bytes: u64::MAX,
    };
    let old = s.write(1, "alice", &[0; 100]).unwrap();
    age(&old, 31);
    let recent = s.write(2, "alice", &[0; 100]).unwrap();
    age(&recent, 29);
    s.write(3, UNKNOWN, &[0; 100]).unwrap();
    let swept = s.sweep(SystemTime::now(), keep_all).unwrap();
    assert_eq!(swept.expired, 1);
    assert_eq!(swept.total, 200);
    assert!(!old.exists() && recent.exists());
    // No age limit: only the cap.
    let capped = Retention {
        days: 0,
        max_bytes: 150,
    };
    let swept = s.sweep(SystemTime::now(), capped).unwrap();
    assert_eq!((swept.expired, swept.over_cap, swept.total), (0, 1, 100));
    assert!(!recent.exists(), "the oldest goes first");
    assert_eq!(s.read(3).unwrap().map(|b| b.len()), Some(100));
}

#[test]
fn at_most_twenty_pictures_a_minute_are_kept_the_rest_counted() {
    let mut b = PictureBudget::default();
    let t0 = Duration::from_secs(100);
    let kept = (0..30)
        .filter(|i| b.admit(t0 + Duration::from_millis(i * 100)))
        .count();
    assert_eq!(kept, PER_MINUTE as usize);
    assert_eq!(b.over(), 10);
    // The minute ends (the loop rolls it): the count is logged and starts over.
    b.roll(t0 + Duration::from_secs(59));
    assert_eq!(b.over(), 10, "not over yet");
    b.roll(t0 + Duration::from_secs(61));
    assert_eq!(b.over(), 0);
    assert!(b.admit(t0 + Duration::from_secs(61)));
    assert_eq!(b.over(), 0);
}

#[test]
fn the_writer_cuts_the_crop_encodes_it_as_png_and_writes_it_off_the_callers_thread() {
    let (_dir, s) = store();
    let frame = image::RgbImage::from_pixel(640, 480, image::Rgb([90, 120, 150]));
    let landmarks = [
        [300.0, 200.0],
        [340.0, 200.0],
        [320.0, 225.0],
        [305.0, 245.0],
        [335.0, 245.0],
    ];
    let retention = Retention {
        days: 30,
        max_bytes: u64::MAX,
    };
    let w = PictureWriter::start(s.clone(), retention).unwrap();
    w.keep(42, UNKNOWN, std::sync::Arc::new(frame), landmarks);
    drop(w);
    let png = s
        .read(42)
        .unwrap()
        .expect("written before the writer stopped");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!(img.width(), crate::people::crops::CROP_SIZE);
}
