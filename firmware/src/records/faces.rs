//! Decision pictures (`[audit] faces`): the aligned face chip of each audited decision, kept
//! beside the audit log as `<audit dir>/faces/<SEQ>-<ID>.png` (SEQ: the audit line's `seq`, ID:
//! the person the line names or `unknown`) so an admin can see who was let in or refused.
//!
//! These are biometric data: off by default, files 0600 in a directory 0700, each written
//! atomically, deleted after `faces_days` (swept at start and hourly), with the person
//! (`people remove`), and oldest first past a total size cap. At most [`PER_MINUTE`] are kept a
//! minute; more are counted, not kept. The crop is cut, encoded and written on a thread of its
//! own ([`PictureWriter`]): the door's loop only hands over the frame (moved, not copied) and
//! the face's landmarks after the audit line is written, so a picture never delays an unlock.

use crate::fs::{write_atomic, FileError};
use crate::people::crops::FaceCrop;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

/// Pictures kept a minute at most (more are counted and logged once a minute).
pub const PER_MINUTE: u32 = 20;
/// The default total size cap, in MiB (`[audit] faces_max_mb`).
pub const DEFAULT_MAX_MB: u64 = 200;
/// The default retention, in days (`[audit] faces_days`).
pub const DEFAULT_DAYS: u32 = 30;
/// The most picture SEQs `pictures unknown` lists.
pub const MAX_LISTED: usize = 500;
/// The largest picture file read back (a 240 px PNG chip is ~100 KiB).
pub const MAX_PICTURE_BYTES: u64 = 1 << 20;
/// How often the retention sweep runs besides at start.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What `unknown` faces are named in a picture's file.
pub const UNKNOWN: &str = "unknown";

/// One kept picture, as its file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// The audit line's `seq`.
    pub seq: u64,
    /// The person the line names, or [`UNKNOWN`].
    pub id: String,
    /// Its file.
    pub path: PathBuf,
}

/// The pictures' directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceStore {
    dir: PathBuf,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Pictures older than the retention.
    pub expired: usize,
    /// Pictures deleted, oldest first, to get under the size cap.
    pub over_cap: usize,
    /// Bytes the remaining pictures take.
    pub total: u64,
}

/// How long pictures are kept and how much room they may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days (0: no age limit; the size cap still holds).
    pub days: u32,
    /// Total bytes.
    pub max_bytes: u64,
}

impl FaceStore {
    /// The store beside the audit log at `audit` (`/var/lib/facegate/audit.jsonl` ->
    /// `/var/lib/facegate/faces/`).
    pub fn for_audit(audit: &Path) -> Self {
        let dir = match audit.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.join("faces"),
            _ => PathBuf::from("faces"),
        };
        Self { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name of the picture of line `seq` naming `id`; `None` for an id that is not
    /// a gallery id (never a path from outside).
    fn file_name(seq: u64, id: &str) -> Option<String> {
        let ok = id == UNKNOWN || crate::people::gallery::validate_id(id).is_ok();
        ok.then(|| format!("{seq}-{id}.png"))
    }

    /// Parses a picture's file name back; anything else in the directory (temporary files of
    /// an atomic write start with `.`) is not a picture.
    fn parse_name(name: &str) -> Option<(u64, String)> {
        let stem = name.strip_suffix(".png")?;
        let (seq, id) = stem.split_once('-')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq.parse().ok()?;
        Self::file_name(seq, id).map(|_| (seq, id.to_owned()))
    }

    /// Every picture, oldest (lowest seq) first. A missing directory: none.
    pub fn pictures(&self) -> std::io::Result<Vec<Picture>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some((seq, id)) = name.to_str().and_then(Self::parse_name) else {
                continue;
            };
            out.push(Picture {
                seq,
                id,
                path: entry.path(),
            });
        }
        out.sort_by_key(|p| p.seq);
        Ok(out)
    }

    /// Writes the picture of line `seq` (atomically, 0600; the directory 0700). A picture of
    /// the same seq left by an older log is replaced.
    pub fn write(&self, seq: u64, id: &str, png: &[u8]) -> Result<PathBuf, FileError> {
        let io = |source| FileError {
            path: self.dir.clone(),
            source,
        };
        let name = Self::file_name(seq, id).ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a gallery id",
            ))
        })?;
        if !self.dir.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&self.dir)
                .map_err(io)?;
        }
        for old in self.pictures().map_err(io)? {
            if old.seq == seq && old.id != id {
                let _ = std::fs::remove_file(&old.path);
            }
        }
        let path = self.dir.join(name);
        write_atomic(&path, png)?;
        Ok(path)
    }

    /// The PNG of line `seq`, if one is kept.
    pub fn read(&self, seq: u64) -> std::io::Result<Option<Vec<u8>>> {
        self.read_where(|p| p.seq == seq)
    }

    /// The PNG of line `seq` if one is kept under the name [`UNKNOWN`] (the site link's
    /// `site picture`: never a named person's, whatever else was judged).
    pub fn read_unknown(&self, seq: u64) -> std::io::Result<Option<Vec<u8>>> {
        self.read_where(|p| p.seq == seq && p.id == UNKNOWN)
    }

    fn read_where(&self, which: impl Fn(&Picture) -> bool) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let Some(p) = self.pictures()?.into_iter().find(which) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        match std::fs::File::open(&p.path) {
            Ok(f) => f.take(MAX_PICTURE_BYTES).read_to_end(&mut bytes)?,
            // Swept or dismissed meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(bytes))
    }

    /// The seqs of the kept pictures of unknown faces, newest first, at most `limit`.
    pub fn unknown(&self, limit: usize) -> std::io::Result<Vec<u64>> {
        Ok(self
            .pictures()?
            .into_iter()
            .rev()
            .filter(|p| p.id == UNKNOWN)
            .take(limit)
            .map(|p| p.seq)
            .collect())
    }

    /// Deletes every picture of person `id` (their removal); how many.
    pub fn remove_person(&self, id: &str) -> std::io::Result<usize> {
        self.delete(|p| p.id == id)
    }

    /// Deletes the pictures of lines `seqs`; only unknown faces' when `unknown_only`. How many.
    pub fn delete_seqs(&self, seqs: &[u64], unknown_only: bool) -> std::io::Result<usize> {
        self.delete(|p| seqs.contains(&p.seq) && (!unknown_only || p.id == UNKNOWN))
    }

    fn delete(&self, which: impl Fn(&Picture) -> bool) -> std::io::Result<usize> {
        let mut n = 0;
        for p in self.pictures()?.iter().filter(|p| which(p)) {
            match std::fs::remove_file(&p.path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Deletes the pictures older than `r.days` (by their file's time) and then, oldest
    /// first, as many as it takes to bring the total under `r.max_bytes`.
    pub fn sweep(&self, now: SystemTime, r: Retention) -> std::io::Result<Swept> {
        let mut swept = Swept::default();
        let max_age = Duration::from_secs(u64::from(r.days) * 86_400);
        let mut kept = Vec::new();
        for p in self.pictures()? {
            let Ok(meta) = std::fs::metadata(&p.path) else {
                continue;
            };
            let modified = meta.modified().unwrap_or(now);
            let age = now.duration_since(modified).unwrap_or_default();
            if r.days > 0 && age > max_age {
                if std::fs::remove_file(&p.path).is_ok() {
                    swept.expired += 1;
                }
                continue;
            }
            kept.push((modified, p.seq, meta.len(), p.path));
        }
        kept.sort();
        let mut total: u64 = kept.iter().map(|k| k.2).sum();
        for (_, _, len, path) in &kept {
            if total <= r.max_bytes {
                break;
            }
            if std::fs::remove_file(path).is_ok() {
                swept.over_cap += 1;
                total -= len;
            }
        }
        swept.total = total;
        Ok(swept)
    }
}

/// At most [`PER_MINUTE`] pictures a minute; the rest are counted for one line a minute.
#[derive(Debug, Default)]
pub struct PictureBudget {
    window: Option<Duration>,
    kept: u32,
    over: u32,
}

impl PictureBudget {
    /// Ends the minute once it is over: the pictures not kept in it are logged (one line),
    /// and a new minute starts with the next picture. Called by [`Self::admit`] and by the
    /// door's loop, so the count is logged once its minute is over.
    pub fn roll(&mut self, now: Duration) {
        let Some(start) = self.window else {
            return;
        };
        if now.saturating_sub(start) < Duration::from_secs(60) {
            return;
        }
        if self.over > 0 {
            tracing::warn!(
                "{} decision picture(s) not kept in the last minute (over {PER_MINUTE} a minute)",
                self.over
            );
        }
        *self = Self::default();
    }

    /// Whether a picture at `now` (monotonic) may be kept; if not it is counted.
    pub fn admit(&mut self, now: Duration) -> bool {
        self.roll(now);
        if self.window.is_none() {
            self.window = Some(now);
        }
        if self.kept < PER_MINUTE {
            self.kept += 1;
            true
        } else {
            self.over = self.over.saturating_add(1);
            false
        }
    }

    /// Pictures not kept in the current minute.
    pub fn over(&self) -> u32 {
        self.over
    }
}

/// A picture for the writer: the frame and its face's landmarks.
struct Job {
    seq: u64,
    id: String,
    /// Shared with the live view (no copy of the frame).
    frame: std::sync::Arc<image::RgbImage>,
    landmarks: [[f32; 2]; 5],
}

/// Encodes and writes the pictures on a thread of its own, and sweeps the store at start and
/// every hour. Dropping it lets the thread finish what it was handed, then joins it.
pub struct PictureWriter {
    tx: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PictureWriter {
    /// Starts the thread for `store` under `retention`.
    pub fn start(store: FaceStore, retention: Retention) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("pictures".into())
            .spawn(move || {
                let sweep = |store: &FaceStore| match store.sweep(SystemTime::now(), retention) {
                    Ok(s) => {
                        if s.expired + s.over_cap > 0 {
                            tracing::info!(
                                expired = s.expired,
                                over_cap = s.over_cap,
                                "decision pictures deleted (retention)"
                            );
                        }
                        s.total
                    }
                    Err(e) => {
                        tracing::error!("decision pictures in {}: {e}", store.dir().display());
                        0
                    }
                };
                let mut aligner = crate::vision::align::Aligner::default();
                let mut total = sweep(&store);
                let mut next = Instant::now() + SWEEP_EVERY;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(job) => {
                            // The crop (a few ms) and its PNG (about 1 ms) are made here, off
                            // the door's path.
                            let written = FaceCrop::cut(&mut aligner, &job.frame, &job.landmarks)
                                .ok_or_else(|| "degenerate landmarks".to_owned())
                                .and_then(|c| c.encode().map_err(|e| e.to_string()))
                                .and_then(|c| {
                                    store
                                        .write(job.seq, &job.id, c.png())
                                        .map(|_| c.png().len() as u64)
                                        .map_err(|e| e.to_string())
                                });
                            match written {
                                Ok(len) => total += len,
                                Err(e) => {
                                    tracing::error!("decision picture {} not kept: {e}", job.seq)
                                }
                            }
                            if total > retention.max_bytes {
                                total = sweep(&store);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            total = sweep(&store);
                            next = Instant::now() + SWEEP_EVERY;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands the face of audit line `seq` (naming `id`), at `landmarks` in `frame`, to the
    /// thread; never waits. The queue is bounded by [`PictureBudget`]: [`PER_MINUTE`] a minute.
    pub fn keep(
        &self,
        seq: u64,
        id: &str,
        frame: std::sync::Arc<image::RgbImage>,
        landmarks: [[f32; 2]; 5],
    ) {
        if let Some(tx) = &self.tx {
            let job = Job {
                seq,
                id: id.to_owned(),
                frame,
                landmarks,
            };
            if tx.send(job).is_err() {
                tracing::error!("decision picture {seq} not kept: the writer is gone");
            }
        }
    }
}

impl Drop for PictureWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
