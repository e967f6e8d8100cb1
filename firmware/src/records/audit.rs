//! The audit trail: one JSON object per line for every grant, denial and notable event, appended
//! to a file that a crash never leaves with a torn line.
//!
//! Each event is one `write` of a whole line on a file opened with `O_APPEND`, followed by
//! `fdatasync`. A write that fails half-way (disk full) is cut back to the previous line. A line
//! torn by power loss (the kernel had written part of it) is cut off when the log is next opened,
//! with a warning and a `log_repaired` event; every line before it is intact.
//!
//! Tamper evidence: every line the daemon writes carries `seq` (1, 2, ... continuing the file)
//! and `hash`, the SHA-256 (hex) of the previous line's `hash` (hex text; 64 zeros before the
//! first chained line) followed by this line's text without its `,"hash":"..."` ending. Editing,
//! inserting or removing a line breaks the chain at that line ([`verify`]); a head kept outside
//! the door ([`head`]) also shows a cut tail. Every line also says which boot it belongs to
//! (`boot_id`) and whether the clock was synchronised (`clock_synced`): a Pi without a clock
//! battery stamps the events before NTP with a wrong time.
//!
//! Text fields come from outside (names, reasons quoting a refused command): each is capped at
//! [`MAX_TEXT`] characters and its control characters are escaped when it is recorded, so no
//! event makes a giant line or a line that prints as something else.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    /// A head to check the log against could not be read.
    #[error("{0}")]
    Head(String),
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
    /// At start: the previous run ended without `stop` (crash, kill, watchdog, power loss).
    UncleanShutdown,
    /// At start: a torn last line (power loss during a write) was cut off.
    LogRepaired,
    /// An event could not be recorded (the attempt to leave a trace of the failure itself).
    AuditFailed,
    /// The door opened while locked (forced, or a mechanical key): alarm.
    ForcedOpen,
    /// The door has been open for long (pre-alarm).
    HeldOpenWarning,
    /// The door stayed open too long: alarm.
    HeldOpen,
    /// The door closed: its forced or held-open alarm is over.
    AlarmCleared,
    /// Too many denials in a short time: recognition pauses (`reason` says how long).
    Lockout,
    /// The camera shows nothing (covered or blinded, `reason` says which): alarm.
    Tamper,
    /// The camera shows a scene again after a tamper.
    TamperCleared,
    /// The camera has stayed gone for long: alarm.
    CameraLost,
    /// Office hours began: the door stays unlocked.
    OfficeHoursStart,
    /// Office hours ended: the door locks.
    OfficeHoursEnd,
    /// Reader mode: a grant's credential was sent to the panel (`reason` says what went out).
    CredentialSent,
    /// Reader mode: a grant's credential could not be sent (none set, or the line failed).
    CredentialError,
    /// Reader mode: the panel polls this reader again (`reason`: over Secure Channel or not).
    PanelOnline,
    /// Reader mode: the panel stopped polling this reader.
    PanelOffline,
    /// Reader mode: the panel set this reader's Secure Channel key, or tried to (`reason`: saved,
    /// or refused and why).
    PanelKey,
    /// A signed remote command unlocked the door (`identity`: who asked).
    RemoteUnlock,
    /// A signed command put the door in lockdown: no face unlocks until cleared.
    Lockdown,
    /// A signed command lifted the lockdown.
    LockdownCleared,
    /// A command from the broker was refused (bad signature, replayed, unknown).
    CommandRefused,
    /// The stored site versions were reset to the door's clock (`facegate door site-reset`).
    SiteReset,
    /// A wrong operator key on the control API (`reason`: which connection; at most 10 a minute
    /// one by one, then a count).
    OperatorRefused,
    /// A person was enrolled through the control API (`identity`: their id; `reason`: who
    /// asked, `by NAME`, and how many faces).
    PersonAdded,
    /// Faces were added to an enrolled person through the control API.
    FacesAdded,
    /// A person was removed through the control API, with their crops and decision pictures.
    PersonRemoved,
    /// A person's display name was changed through the control API.
    PersonRenamed,
    /// Decision pictures of unknown faces were deleted (`reason`: who asked and their seqs).
    PicturesDismissed,
    /// The picture of a stranger's denial went to the site link (`site picture`, with
    /// `[mqtt] unknown_face_picture`; `reason`: its seq, size and the peer).
    PictureShared,
    /// A person's access policy was replaced through the control API (`identity`: their id;
    /// `reason`: `by NAME` and the policy now).
    PolicyChanged,
    /// A person's card credential was set or cleared through the control API (`reason`: who
    /// asked and the card's format, never its number).
    CredentialChanged,
    /// A duress PIN opened the door (`identity`: whose): a silent alarm, no sign at the door;
    /// the site link publishes it.
    Duress,
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
    /// The relay's state once this event's act was done: written by the gate
    /// (`access::gate`) on every line it writes, so what a display shows is what the relay does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::hal::LockState>,
    /// `[audit] faces`: the face's picture is kept as `faces/<seq>-<identity>.png`
    /// ([`crate::records::faces`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<bool>,
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
            lock: None,
            picture: None,
        }
    }
}

/// The most characters of one text field of an event, as recorded.
pub const MAX_TEXT: usize = 512;
/// What ends a text field cut at [`MAX_TEXT`] characters.
pub const TRUNCATED: &str = "…(truncated)";

/// A text field as recorded: control characters (newlines too) and the characters that reorder
/// or break lines on a terminal escaped as Rust writes them (`\n`, `\u{1b}`), then cut at
/// [`MAX_TEXT`] characters.
fn bounded_text(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) && s.chars().nth(MAX_TEXT).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::new();
    let mut n = 0;
    for c in s.chars() {
        let (escaped, plain) = match unsafe_char(c) {
            true => (Some(c.escape_default()), None),
            false => (None, Some(c)),
        };
        for e in escaped.into_iter().flatten().chain(plain) {
            if n == MAX_TEXT {
                out.push_str(TRUNCATED);
                return Cow::Owned(out);
            }
            out.push(e);
            n += 1;
        }
    }
    Cow::Owned(out)
}

impl Event {
    /// The event as [`AuditLog`] records it: every text field through [`MAX_TEXT`] and escaping
    /// (borrowed when nothing needs it, the common case).
    pub fn bounded(&self) -> Cow<'_, Event> {
        fn field(f: &Option<String>) -> Option<Cow<'_, str>> {
            f.as_deref().map(bounded_text)
        }
        let (time, identity, name, nearest, reason) = (
            bounded_text(&self.time),
            field(&self.identity),
            field(&self.name),
            field(&self.nearest),
            field(&self.reason),
        );
        let owned = |f: &Option<Cow<'_, str>>| matches!(f, Some(Cow::Owned(_)));
        if !matches!(time, Cow::Owned(_))
            && !owned(&identity)
            && !owned(&name)
            && !owned(&nearest)
            && !owned(&reason)
        {
            return Cow::Borrowed(self);
        }
        let text = |f: Option<Cow<'_, str>>| f.map(Cow::into_owned);
        Cow::Owned(Event {
            time: time.into_owned(),
            identity: text(identity),
            name: text(name),
            nearest: text(nearest),
            reason: text(reason),
            ..self.clone()
        })
    }
}

/// What the log says about the run before this one, found when it was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviousRun {
    /// The last event written (`None`: an empty or new log).
    pub last_event: Option<EventKind>,
    /// Its time.
    pub last_time: Option<String>,
    /// Bytes of a torn last line cut off at open.
    pub repaired_bytes: u64,
}

/// `[audit]`: the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The append-only JSON-lines log.
    pub path: PathBuf,
    /// What a grant does when the trail cannot be written.
    pub on_failure: AuditFailure,
    /// Rotate the log before it passes this many bytes (0: never by size).
    pub rotate_bytes: u64,
    /// Rotate the log at the first event of each UTC day.
    pub rotate_daily: bool,
    /// Delete rotated files older than this many days (0: keep all).
    pub retention_days: u32,
    /// Never delete the newest this many rotated files for their age: a clock set ahead makes
    /// every file look old.
    pub keep_rotated: u32,
    /// Keep the face picture of every decision (biometric data: off by default).
    pub faces: bool,
    /// Delete decision pictures older than this many days (0: no age limit, only the cap).
    pub faces_days: u32,
    /// The decision pictures' total size cap in MiB (the oldest are deleted first).
    pub faces_max_mb: u64,
}

impl AuditConfig {
    /// The rotation these settings ask for.
    pub fn rotation(&self) -> crate::records::rotation::Rotation {
        crate::records::rotation::Rotation {
            max_bytes: self.rotate_bytes,
            daily: self.rotate_daily,
            retention_days: self.retention_days,
            keep_rotated: self.keep_rotated,
        }
    }

    /// How long decision pictures are kept and how much room they may take.
    pub fn faces_retention(&self) -> crate::records::faces::Retention {
        crate::records::faces::Retention {
            days: self.faces_days,
            max_bytes: self.faces_max_mb.saturating_mul(1 << 20),
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(crate::paths::DEFAULT_AUDIT),
            on_failure: AuditFailure::Deny,
            rotate_bytes: 0,
            rotate_daily: false,
            retention_days: 0,
            keep_rotated: 30,
            faces: false,
            faces_days: crate::records::faces::DEFAULT_DAYS,
            faces_max_mb: crate::records::faces::DEFAULT_MAX_MB,
        }
    }
}

/// `audit.on_failure`: the one rule for an audit trail that cannot be written (cannot be
/// opened, disk full, I/O error). The exit button is never refused: people must get out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditFailure {
    /// No grant that cannot be recorded: the grant is written first, and the door stays locked
    /// if that fails (the secure default for a door).
    Deny,
    /// The door opens anyway; the failure is an error in the journal and the service status.
    GrantAndAlarm,
}

/// Where the daemon sends its events.
pub trait AuditSink {
    /// Records one event; an error means it is not recorded.
    fn record(&mut self, event: &Event) -> Result<(), AuditError>;

    /// What the log held before this run (sinks without history: nothing).
    fn previous_run(&self) -> Option<PreviousRun> {
        None
    }

    /// The `seq` of the last line recorded (sinks without sequence numbers: none).
    fn last_seq(&self) -> Option<u64> {
        None
    }
}

/// In-memory sink (tests, the simulator's summary).
impl AuditSink for Vec<Event> {
    fn record(&mut self, event: &Event) -> Result<(), AuditError> {
        self.push(event.clone());
        Ok(())
    }
}

/// The previous hash of the first chained line.
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Where systemd-timesyncd says the clock is synchronised (it exists once it is).
const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";
/// This boot's id.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// One line as written: the event between its sequence number and its context.
#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a Event,
    boot_id: &'a str,
    clock_synced: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain hash of a line's text (without its hash field) after `prev`.
fn chain_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(body.as_bytes());
    hex(&h.finalize())
}

/// Splits a chained line into its text without the hash field and the hash.
fn split_hash(line: &str) -> Option<(String, &str)> {
    const KEY: &str = ",\"hash\":\"";
    let i = line.rfind(KEY)?;
    let hash = line[i + KEY.len()..].strip_suffix("\"}")?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (format!("{}}}", &line[..i]), hash))
}

/// The append-only audit file.
pub struct AuditLog {
    path: PathBuf,
    file: Option<File>,
    line: Vec<u8>,
    seq: u64,
    prev: String,
    boot_id: String,
    previous: Option<PreviousRun>,
    rotation: crate::records::rotation::Rotation,
    /// The UTC day of the active file's last line (daily rotation).
    day: Option<String>,
}

impl AuditLog {
    /// Opens (creating, mode 0640) the log at `path`, cutting off a torn last line if any.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let mut log = Self::closed(path);
        log.reopen()?;
        Ok(log)
    }

    /// Like [`AuditLog::open`], but a log that cannot be opened now is an error in the journal,
    /// and each event tries again: until then every `record` fails, and the daemon applies
    /// `audit.on_failure` (by default: no grants).
    pub fn open_or_later(path: &Path) -> Self {
        let mut log = Self::closed(path);
        if let Err(e) = log.reopen() {
            tracing::error!("{e}; every event will try again");
        }
        log
    }

    fn closed(path: &Path) -> Self {
        let boot_id = std::fs::read_to_string(BOOT_ID)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            path: path.to_owned(),
            file: None,
            line: Vec::with_capacity(512),
            seq: 0,
            prev: ZERO_HASH.into(),
            boot_id,
            previous: None,
            rotation: crate::records::rotation::Rotation::default(),
            day: None,
        }
    }

    /// Rotates the log as `rotation` says (and deletes rotated files past their retention now).
    pub fn with_rotation(mut self, rotation: crate::records::rotation::Rotation) -> Self {
        self.rotation = rotation;
        let r = rotation;
        for f in crate::records::rotation::expire(
            &self.path,
            r.retention_days,
            r.keep_rotated,
            SystemTime::now(),
        ) {
            tracing::info!("deleted {} (older than the audit retention)", f.display());
        }
        self
    }

    /// Renames the active file away and starts a new one; the chain goes on in memory.
    fn rotate(&mut self, now: SystemTime) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let to = crate::records::rotation::rotate(&self.path, now).map_err(io)?;
        tracing::info!("audit log rotated to {}", to.display());
        // Until the new file exists a crash leaves none: the next open continues the chain from
        // the last rotated file.
        self.file = Some(
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&self.path)
                .map_err(io)?,
        );
        let r = self.rotation;
        for f in crate::records::rotation::expire(&self.path, r.retention_days, r.keep_rotated, now)
        {
            tracing::info!("deleted {} (older than the audit retention)", f.display());
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), AuditError> {
        let path = self.path.clone();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .map_err(io)?;
        let cut = repair(&mut file).map_err(io)?;
        if cut > 0 {
            tracing::warn!(
                path = %path.display(),
                "cut off a torn last line of {cut} bytes (a crash or power loss during a write)"
            );
        }
        let mut last = last_line(&mut file).map_err(io)?;
        if last.is_none() {
            // A new active file after a rotation (or a crash during one): the chain goes on
            // from the newest rotated file.
            if let Some(prev) = crate::records::rotation::rotated(&path).last() {
                if let Ok(mut f) = File::open(prev) {
                    last = last_line(&mut f).ok().flatten();
                }
            }
        }
        let v: Option<serde_json::Value> =
            last.as_deref().and_then(|l| serde_json::from_str(l).ok());
        let field = |k: &str| v.as_ref().and_then(|v| v.get(k));
        // A chained last line continues the chain; an old unchained one starts a new chain.
        match (
            field("seq").and_then(|s| s.as_u64()),
            last.as_deref().and_then(split_hash),
        ) {
            (Some(seq), Some((_, hash))) => {
                self.seq = seq;
                self.prev = hash.to_owned();
            }
            _ => {
                self.seq = 0;
                self.prev = ZERO_HASH.into();
            }
        }
        self.day = field("time")
            .and_then(|t| t.as_str())
            .map(|t| crate::records::rotation::day_of(t).to_owned());
        // Only the first open describes the previous run; a later re-open is this run's log.
        if self.previous.is_none() {
            self.previous = Some(PreviousRun {
                last_event: field("event").and_then(|e| serde_json::from_value(e.clone()).ok()),
                last_time: field("time").and_then(|t| t.as_str()).map(str::to_owned),
                repaired_bytes: cut,
            });
        }
        self.file = Some(file);
        Ok(())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The position of the last newline in `file` before `end`, read backwards in chunks.
fn rfind_newline(file: &mut File, mut end: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; 8192];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The last whole line of `file` (a torn tail after its newline is not a line), if any. It is
/// found by reading backwards as far as it goes: how long it is does not matter (a window of
/// fixed size once made a long last line restart the chain at seq 1).
fn last_line(file: &mut File) -> std::io::Result<Option<String>> {
    let len = file.metadata()?.len();
    let Some(end) = rfind_newline(file, len)? else {
        return Ok(None);
    };
    let start = rfind_newline(file, end)?.map_or(0, |i| i + 1);
    let mut buf = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Truncates `file` after its last newline; returns how many bytes were cut.
fn repair(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    // Not a single whole line: the file holds only a torn one (or nothing).
    let keep = rfind_newline(file, len)?.map_or(0, |i| i + 1);
    if keep < len {
        file.set_len(keep)?;
        file.sync_all()?;
    }
    Ok(len - keep)
}

impl AuditSink for AuditLog {
    fn record(&mut self, event: &Event) -> Result<(), AuditError> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let event = &*event.bounded();
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        // A log left with seq u64::MAX (edited, or not ours) wraps rather than panics; the
        // chain's hashes still link the lines.
        let line = Line {
            seq: self.seq.wrapping_add(1),
            event,
            boot_id: &self.boot_id,
            clock_synced: Path::new(TIMESYNC_FLAG).exists(),
        };
        let body = serde_json::to_string(&line).map_err(|e| io(std::io::Error::other(e)))?;
        let hash = chain_hash(&self.prev, &body);
        self.line.clear();
        self.line
            .extend_from_slice(&body.as_bytes()[..body.len() - 1]);
        self.line
            .extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
        let len = match self.file.as_ref() {
            Some(f) => f.metadata().map_err(io)?.len(),
            None => return Err(io(std::io::Error::other("not open"))),
        };
        let day = crate::records::rotation::day_of(&event.time);
        let r = self.rotation;
        if len > 0
            && ((r.max_bytes > 0 && len + self.line.len() as u64 > r.max_bytes)
                || (r.daily && self.day.as_deref().is_some_and(|d| d != day)))
        {
            self.rotate(SystemTime::now())?;
        }
        let day = day.to_owned();
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let Some(file) = self.file.as_mut() else {
            return Err(io(std::io::Error::other("not open")));
        };
        let before = file.metadata().map_err(io)?.len();
        if let Err(e) = file.write_all(&self.line).and_then(|_| file.sync_data()) {
            // Cut a partial line back so the next event starts on a line of its own.
            let _ = file.set_len(before);
            return Err(io(e));
        }
        self.seq = self.seq.wrapping_add(1);
        self.prev = hash;
        self.day = Some(day);
        Ok(())
    }

    fn previous_run(&self) -> Option<PreviousRun> {
        self.previous.clone()
    }

    fn last_seq(&self) -> Option<u64> {
        (self.seq > 0).then_some(self.seq)
    }
}

/// Reads every event of a log: its rotated files in order, then the active file.
pub fn read_all(path: &Path) -> Result<Vec<Event>, AuditError> {
    let mut out = Vec::new();
    for f in crate::records::rotation::all_files(path) {
        out.extend(read_log(&f)?);
    }
    Ok(out)
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

mod verify;
pub use verify::{
    head, head_in, verify, verify_anchored, verify_files, Anchor, Head, Status, Verified,
};

#[cfg(test)]
mod tests;
