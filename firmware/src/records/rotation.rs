//! Audit log rotation and retention: the active file is renamed to `<path>.<UTC timestamp>`
//! (`audit.jsonl.20261129T073500.123Z`, so name order is time order) when it passes
//! `audit.rotate_bytes` or a UTC day ends, and rotated files older than `audit.retention_days`
//! are deleted. A rename is atomic, so a crash during a rotation leaves every line in exactly one
//! file; `seq` and the hash chain continue in the new file. Readers (`facegate audit`, the MQTT
//! bridge) take `<path>.*` in name order, then the active file.

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
}

/// `20261129T073500.123Z` for `t`: fixed width, so names sort by time.
pub fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace(['-', ':'], "")
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

/// Renames the active file at `path` to its rotated name for `now`; returns that name.
pub fn rotate(path: &Path, now: SystemTime) -> std::io::Result<PathBuf> {
    let mut t = now;
    let target = loop {
        let mut name = path.as_os_str().to_owned();
        name.push(".");
        name.push(stamp(t));
        let p = PathBuf::from(name);
        if !p.exists() {
            break p;
        }
        t += Duration::from_millis(1);
    };
    std::fs::rename(path, &target)?;
    sync_dir(path);
    Ok(target)
}

/// Deletes rotated files rotated more than `days` days before `now`; returns them.
pub fn expire(path: &Path, days: u32, now: SystemTime) -> Vec<PathBuf> {
    if days == 0 {
        return Vec::new();
    }
    let cutoff = stamp(now - Duration::from_secs(u64::from(days) * 86_400));
    let mut gone = Vec::new();
    let prefix_len = path.file_name().map_or(0, |n| n.len() + 1);
    for f in rotated(path) {
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
    fn stamps_sort_by_time_and_rotated_files_are_found_in_order() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_937_700);
        assert_eq!(stamp(t), "20261129T073500.000Z");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for (i, s) in [30u64, 1, 86_400 * 3].iter().enumerate() {
            std::fs::write(&path, format!("{i}\n")).unwrap();
            rotate(&path, t + Duration::from_secs(*s)).unwrap();
        }
        // Same instant twice: a distinct name, still after.
        std::fs::write(&path, "x\n").unwrap();
        rotate(&path, t + Duration::from_secs(1)).unwrap();
        std::fs::write(dir.path().join("audit.jsonl.bak"), "").unwrap();
        std::fs::write(&path, "active\n").unwrap();
        let files = all_files(&path);
        let text: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(text, ["1\n", "x\n", "0\n", "2\n", "active\n"]);
        // Retention: files rotated more than 2 days before t + 3 days go.
        let gone = expire(&path, 2, t + Duration::from_secs(86_400 * 3 + 10));
        assert_eq!(gone.len(), 3);
        assert_eq!(all_files(&path).len(), 2);
        assert!(expire(&path, 0, t + Duration::from_secs(86_400 * 365)).is_empty());
    }
}
