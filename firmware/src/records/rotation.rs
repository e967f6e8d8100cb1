//! Audit log rotation and retention: the active file is renamed to `<path>.<UTC timestamp>`
//! (`audit.jsonl.20261129T073500.123Z`) when it passes `audit.rotate_bytes` or a UTC day ends,
//! and rotated files older than `audit.retention_days` are deleted, never the newest
//! `audit.keep_rotated` of them. A rename is atomic, so a crash during a rotation leaves every
//! line in exactly one file; `seq` and the hash chain continue in the new file. Readers
//! (`facegate audit`, the MQTT bridge) take `<path>.*` in name order, then the active file.
//!
//! Name order is rotation order even when the clock is wrong: a new name always sorts after the
//! newest existing one (a clock set back gets the newest stamp plus 1 ms). Retention compares
//! stamps with the clock, so a clock set years ahead makes every file look old: the newest
//! `keep_rotated` files are kept whatever the clock says.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// When to rotate and how long to keep rotated files (`[audit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rotation {
    /// Rotate before a line would take the file past this many bytes (0: never by size).
    pub max_bytes: u64,
    /// Rotate at the first event of a new UTC day.
    pub daily: bool,
    /// Delete rotated files older than this many days (0: keep them all).
    pub retention_days: u32,
    /// The newest this many rotated files are never deleted by `retention_days`.
    pub keep_rotated: u32,
}

/// `20261129T073500.123Z` for `t`: fixed width, so names sort by time.
pub fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// The time of a stamp ([`stamp`]; also without milliseconds).
fn parse_stamp(s: &str) -> Option<SystemTime> {
    let part = |r: std::ops::Range<usize>| s.get(r);
    let text = format!(
        "{}-{}-{}T{}:{}:{}",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(9..11)?,
        part(11..13)?,
        s.get(13..)?
    );
    humantime::parse_rfc3339(&text).ok()
}

/// The UTC day (`2026-11-29`) of an RFC 3339 time.
pub fn day_of(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

/// The rotated files of the log at `path`, oldest first.
pub fn rotated(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}.");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_owned();
            let rest = n.strip_prefix(&prefix)?;
            // Only our stamps: digits, 'T', '.', 'Z' (not editor backups and the like).
            (rest.len() >= 16
                && rest.ends_with('Z')
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"T.Z".contains(&b)))
            .then(|| dir.join(n))
        })
        .collect();
    out.sort();
    out
}

/// Every file of the log in order: the rotated ones, then the active one if it exists.
pub fn all_files(path: &Path) -> Vec<PathBuf> {
    let mut files = rotated(path);
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

/// Renames the active file at `path` to its rotated name for `now`, or just after the newest
/// rotated file's if that is not before `now` (the clock went back); returns that name.
pub fn rotate(path: &Path, now: SystemTime) -> std::io::Result<PathBuf> {
    let prefix = path.file_name().map_or(0, |n| n.len() + 1);
    let newest = rotated(path)
        .pop()
        .and_then(|p| p.file_name().map(ToOwned::to_owned));
    let mut t = newest
        .as_ref()
        .and_then(|n| parse_stamp(n.to_str()?.get(prefix..)?))
        .filter(|t| *t >= now)
        .map_or(now, |t| t + Duration::from_millis(1));
    let target = loop {
        let mut name = path.as_os_str().to_owned();
        name.push(".");
        name.push(stamp(t));
        let p = PathBuf::from(name);
        // After the newest by name, whatever the stamps look like (one without milliseconds
        // sorts after the same second with them).
        let after = newest
            .as_deref()
            .is_none_or(|n| p.file_name().is_some_and(|p| p > n));
        if after && !p.exists() {
            break p;
        }
        t += Duration::from_millis(1);
    };
    std::fs::rename(path, &target)?;
    sync_dir(path);
    Ok(target)
}

/// Deletes the rotated files of the log at `path` rotated more than `days` days before `now`
/// (0: none), except the newest `keep` of them by rotation order; returns what it deleted.
pub fn expire(path: &Path, days: u32, keep: u32, now: SystemTime) -> Vec<PathBuf> {
    if days == 0 {
        return Vec::new();
    }
    let cutoff = stamp(
        now.checked_sub(Duration::from_secs(u64::from(days) * 86_400))
            .unwrap_or(SystemTime::UNIX_EPOCH),
    );
    let mut gone = Vec::new();
    let prefix_len = path.file_name().map_or(0, |n| n.len() + 1);
    let mut files = rotated(path);
    // The clock can be years off; the newest files by position cannot.
    files.truncate(files.len().saturating_sub(keep as usize));
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.get(prefix_len..).is_some_and(|s| s < cutoff.as_str())
            && std::fs::remove_file(&f).is_ok()
        {
            gone.push(f);
        }
    }
    if !gone.is_empty() {
        sync_dir(path);
    }
    gone
}

/// Makes a rename or delete in the log's directory durable.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_by_time_and_rotated_files_are_found_in_rotation_order() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_937_700);
        assert_eq!(stamp(t), "20261129T073500.000Z");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for (i, s) in [30u64, 1, 86_400 * 3].iter().enumerate() {
            std::fs::write(&path, format!("{i}\n")).unwrap();
            rotate(&path, t + Duration::from_secs(*s)).unwrap();
        }
        // Same instant twice, or one before the newest: a distinct name, still after.
        std::fs::write(&path, "x\n").unwrap();
        rotate(&path, t + Duration::from_secs(1)).unwrap();
        std::fs::write(dir.path().join("audit.jsonl.bak"), "").unwrap();
        std::fs::write(&path, "active\n").unwrap();
        let files = all_files(&path);
        let text: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(text, ["0\n", "1\n", "2\n", "x\n", "active\n"]);
        // Retention: files rotated more than 2 days before t + 3 days go ("1" was named just
        // after "0", at t + 30 s).
        let gone = expire(&path, 2, 0, t + Duration::from_secs(86_400 * 3 + 10));
        assert_eq!(gone.len(), 2);
        assert_eq!(all_files(&path).len(), 3);
        assert!(expire(&path, 0, 0, t + Duration::from_secs(86_400 * 365)).is_empty());
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    fn stamps(path: &Path) -> Vec<String> {
        rotated(path)
            .iter()
            .map(|f| {
                f.to_str()
                    .unwrap()
                    .rsplit_once("jsonl.")
                    .unwrap()
                    .1
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_clock_set_years_ahead_deletes_no_file_of_the_newest_kept() {
        // Security review finding 3: retention compared stamps with the clock only, so a clock
        // jump of +10 years deleted every rotated file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_937_700);
        for day in 0..10 {
            std::fs::write(&path, format!("{day}\n")).unwrap();
            rotate(&path, t + Duration::from_secs(day * 86_400)).unwrap();
        }
        let ahead = t + Duration::from_secs(10 * 365 * 86_400);
        let gone = expire(&path, 90, 4, ahead);
        assert_eq!(gone.len(), 6, "{gone:?}");
        let left: Vec<String> = rotated(&path)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(left, ["6\n", "7\n", "8\n", "9\n"]);
        // The clock right: nothing of those is older than 90 days.
        assert!(expire(&path, 90, 0, t + Duration::from_secs(10 * 86_400)).is_empty());
        // Keeping more than there are deletes nothing, whatever the clock.
        assert!(expire(&path, 1, 100, ahead).is_empty());
        assert_eq!(rotated(&path).len(), 4);
    }

    #[test]
    fn a_clock_set_back_still_names_each_rotated_file_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_937_700);
        for (i, at) in [t, t - Duration::from_secs(86_400 * 400), t]
            .iter()
            .enumerate()
        {
            std::fs::write(&path, format!("{i}\n")).unwrap();
            rotate(&path, *at).unwrap();
        }
        assert_eq!(
            stamps(&path),
            [
                "20261129T073500.000Z",
                "20261129T073500.001Z",
                "20261129T073500.002Z"
            ]
        );
        let text: Vec<String> = rotated(&path)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(text, ["0\n", "1\n", "2\n"]);
        // A stamp without milliseconds (written by hand): the next name still sorts after it.
        std::fs::rename(
            rotated(&path).pop().unwrap(),
            dir.path().join("audit.jsonl.20261129T073600Z"),
        )
        .unwrap();
        std::fs::write(&path, "3\n").unwrap();
        rotate(&path, t).unwrap();
        let last = rotated(&path).pop().unwrap();
        assert_eq!(std::fs::read_to_string(&last).unwrap(), "3\n");
        assert_eq!(stamps(&path).last().unwrap(), "20261129T073601.000Z");
    }
}
