//! The audit trail: one JSON object per line for every grant, denial and notable event, appended
//! to a file that a crash never leaves with a torn line.
//!
//! Each event is one `write` of a whole line on a file opened with `O_APPEND`, followed by
//! `fdatasync`. A write that fails half-way (disk full) is cut back to the previous line. A line
//! torn by power loss (the kernel had written part of it) is cut off when the log is next opened,
//! with a warning; every line before it is intact.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be opened, repaired or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The daemon started (models loaded, door locked).
    Start,
    /// The door was unlocked for an enrolled person.
    Grant,
    /// A face was refused.
    Deny,
    /// The door locked again after an unlock.
    Relock,
    /// The exit button unlocked the door.
    Exit,
    /// The door contact opened or closed.
    DoorOpened,
    /// The door contact closed.
    DoorClosed,
    /// A changed gallery is in use.
    GalleryReloaded,
    /// A changed gallery was refused; the previous one stays in use.
    GalleryRefused,
    /// The config was reloaded (SIGHUP).
    ConfigReloaded,
    /// A reloaded config was refused; the previous one stays in use.
    ConfigRefused,
    /// The camera failed (stall, unplug, bad frames).
    CameraError,
    /// The camera works again.
    CameraRecovered,
    /// The lock output failed.
    LockError,
    /// The daemon stopped (door locked).
    Stop,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, RFC 3339 UTC.
    pub time: String,
    /// Seconds since the daemon started (monotonic; the simulator's time in the simulator).
    pub t: f64,
    /// What happened.
    pub event: EventKind,
    /// For grants and denials: the person's id, or "unknown".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The person's display name (grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For denials: the nearest enrolled person's id, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest: Option<String>,
    /// Distance to the (nearest) person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<f32>,
    /// Margin over the second-nearest person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f32>,
    /// Frames the decision rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Why (denials, errors, refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` at wall time `wall` and daemon time `t`, with no details.
    pub fn new(kind: EventKind, wall: std::time::SystemTime, t: std::time::Duration) -> Self {
        Self {
            time: humantime::format_rfc3339_millis(wall).to_string(),
            t: (t.as_secs_f64() * 1000.0).round() / 1000.0,
            event: kind,
            identity: None,
            name: None,
            nearest: None,
            distance: None,
            margin: None,
            frames: None,
            reason: None,
        }
    }
}

/// Where the daemon sends its events.
pub trait AuditSink {
    /// Records one event; an error means it is not recorded.
    fn record(&mut self, event: &Event) -> Result<(), AuditError>;
}

/// In-memory sink (tests, the simulator's summary).
impl AuditSink for Vec<Event> {
    fn record(&mut self, event: &Event) -> Result<(), AuditError> {
        self.push(event.clone());
        Ok(())
    }
}

/// The append-only audit file.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
}

impl AuditLog {
    /// Opens (creating, mode 0640) the log at `path`, cutting off a torn last line if any.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map_err(io)?;
        let cut = repair(&mut file).map_err(io)?;
        if cut > 0 {
            tracing::warn!(
                path = %path.display(),
                "cut off a torn last line of {cut} bytes (a crash or power loss during a write)"
            );
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            line: Vec::with_capacity(512),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Truncates `file` after its last newline; returns how many bytes were cut.
fn repair(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
                file.sync_all()?;
            }
            return Ok(len - keep);
        }
        if start == 0 {
            // Not a single whole line: the file holds only a torn one.
            file.set_len(0)?;
            file.sync_all()?;
            return Ok(len);
        }
        end = start;
    }
}

impl AuditSink for AuditLog {
    fn record(&mut self, event: &Event) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).map_err(|e| io(std::io::Error::other(e)))?;
        self.line.push(b'\n');
        let before = self.file.metadata().map_err(io)?.len();
        if let Err(e) = self
            .file
            .write_all(&self.line)
            .and_then(|_| self.file.sync_data())
        {
            // Cut a partial line back so the next event starts on a line of its own.
            let _ = self.file.set_len(before);
            return Err(io(e));
        }
        Ok(())
    }
}

/// Reads an audit log back (the simulator and tests).
pub fn read_log(path: &Path) -> Result<Vec<Event>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn ev(kind: EventKind, t: u64) -> Event {
        Event::new(kind, SystemTime::UNIX_EPOCH, Duration::from_secs(t))
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

    #[test]
    fn an_unwritable_place_is_a_clear_error() {
        let err = AuditLog::open(Path::new("/nonexistent-dir/audit.jsonl"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent-dir/audit.jsonl"), "{err}");
    }
}
