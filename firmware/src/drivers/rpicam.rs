//! The Raspberry Pi CSI camera: frames from an `rpicam-vid` child process writing MJPEG to its
//! stdout, supervised by the daemon (killed on re-open and on stop, never left as a zombie).
//!
//! A reader thread splits the byte stream into JPEGs and keeps only the newest one, so a slow
//! recogniser never works on stale frames; `next_frame` decodes it.

use crate::camera::CameraConfig;
use crate::hal::{CameraError, CameraErrorKind, FrameSource};
use crate::vision::frame::mjpeg_to_rgb;
use image::RgbImage;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A JPEG larger than this is not a camera frame: the splitter drops it and resynchronises.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// How long a stopped child gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(300);

/// Splits an MJPEG byte stream (concatenated JPEGs, maybe garbage between them) into JPEGs:
/// each from its SOI marker (`FF D8` and the next marker) to its EOI marker (`FF D9`).
#[derive(Debug, Default)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// Inside a frame (`buf` starts with SOI).
    in_frame: bool,
    /// Where the EOI search resumes (bytes before it were searched already).
    scanned: usize,
}

impl MjpegSplitter {
    /// Feeds `data`; calls `frame` with each complete JPEG found.
    pub fn push(&mut self, data: &[u8], mut frame: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        loop {
            if !self.in_frame {
                match find_soi(&self.buf) {
                    Some(at) => {
                        self.buf.drain(..at);
                        self.in_frame = true;
                        self.scanned = 2;
                    }
                    None => {
                        // Garbage; keep a tail that may start a marker split across reads.
                        let keep = self.buf.len().min(3);
                        self.buf.drain(..self.buf.len() - keep);
                        return;
                    }
                }
            }
            match find(&self.buf[self.scanned..], &[0xFF, 0xD9]) {
                Some(at) => {
                    let end = self.scanned + at + 2;
                    frame(&self.buf[..end]);
                    self.buf.drain(..end);
                    self.in_frame = false;
                }
                None => {
                    if self.buf.len() > MAX_FRAME_BYTES {
                        // No end in sight: drop it, look for the next start after this one.
                        self.buf.drain(..2);
                        self.in_frame = false;
                        continue;
                    }
                    self.scanned = self.buf.len().saturating_sub(1).max(2);
                    return;
                }
            }
        }
    }
}

/// SOI followed by a real marker (APPn, DQT, SOF, ...), not by another SOI or EOI: a stray
/// `FF D8` in garbage right before a frame is not taken for its start.
fn find_soi(hay: &[u8]) -> Option<usize> {
    hay.windows(4)
        .position(|w| w[..3] == [0xFF, 0xD8, 0xFF] && w[3] >= 0xC0 && !matches!(w[3], 0xD8 | 0xD9))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the reader threads share with the camera.
#[derive(Debug, Default)]
struct State {
    newest: Option<Vec<u8>>,
    /// Frames received so far.
    count: u64,
    /// The child's stdout is closed.
    ended: bool,
    /// The child's stderr is closed: `last_stderr` is final.
    stderr_ended: bool,
    last_stderr: String,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock with state half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Running {
    child: Child,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// The CSI camera through `rpicam-vid` (`[camera] source = "rpicam"`).
#[derive(Debug)]
pub struct RpicamCamera {
    argv: Vec<String>,
    timeout: Duration,
    running: Option<Running>,
    sequence: Option<u64>,
}

impl RpicamCamera {
    /// The command line for `config`: `rpicam_command` then the MJPEG-to-stdout arguments.
    pub fn command_line(config: &CameraConfig) -> Vec<String> {
        let mut argv = config.rpicam_command.clone();
        let (w, h, f) = (config.width, config.height, config.fps);
        for a in [
            "-t",
            "0",
            "-n",
            "--codec",
            "mjpeg",
            "--width",
            &w.to_string(),
            "--height",
            &h.to_string(),
            "--framerate",
            &f.to_string(),
            "-o",
            "-",
        ] {
            argv.push(a.to_owned());
        }
        argv
    }

    /// Starts the child now.
    pub fn open(config: &CameraConfig) -> Result<Self, CameraError> {
        let mut cam = Self::later(config);
        cam.running = Some(cam.spawn()?);
        Ok(cam)
    }

    /// Starts the child now, or leaves it to the daemon's re-open (with backoff) if it fails.
    pub fn open_or_later(config: &CameraConfig) -> Self {
        let mut cam = Self::later(config);
        match cam.spawn() {
            Ok(r) => cam.running = Some(r),
            Err(e) => tracing::error!("camera: {e}"),
        }
        cam
    }

    fn later(config: &CameraConfig) -> Self {
        Self {
            argv: Self::command_line(config),
            timeout: Duration::from_secs_f64(config.timeout_seconds),
            running: None,
            sequence: None,
        }
    }

    fn error(&self, kind: CameraErrorKind, what: impl std::fmt::Display) -> CameraError {
        CameraError::new(
            kind,
            format!("camera {}: {what}", self.argv.first().map_or("", |s| s)),
        )
    }

    fn spawn(&self) -> Result<Running, CameraError> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| self.error(CameraErrorKind::Other, "no program configured"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a stop reaches whatever it started (a wrapper's children).
            .process_group(0)
            .spawn()
            .map_err(|e| self.error(CameraErrorKind::Disconnected, format!("cannot start: {e}")))?;
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::new();
        if let Some(out) = child.stdout.take() {
            let s = shared.clone();
            threads.push(std::thread::spawn(move || read_frames(out, &s)));
        }
        if let Some(err) = child.stderr.take() {
            let s = shared.clone();
            threads.push(std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let line = line.trim();
                    if !line.is_empty() {
                        tracing::debug!("rpicam: {line}");
                        s.lock().last_stderr = line.chars().take(300).collect();
                    }
                }
                s.lock().stderr_ended = true;
                s.changed.notify_all();
            }));
        }
        tracing::info!("camera: started {}", self.argv.join(" "));
        Ok(Running {
            child,
            shared,
            threads,
        })
    }

    /// Stops the child (SIGTERM, then SIGKILL after a grace) and reaps it and its threads.
    fn stop(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let group = -(r.child.id() as i32);
        if matches!(r.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) with a process group we created; no memory is involved.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + GRACE;
            while matches!(r.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // SAFETY: as above. Also reaches group members that outlived the leader.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = r.child.kill();
        let _ = r.child.wait();
        for t in r.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The reader thread: splits stdout into frames, keeps the newest.
fn read_frames(mut out: ChildStdout, shared: &Shared) {
    let mut splitter = MjpegSplitter::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match out.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&chunk[..n], |jpeg| {
            let mut st = shared.lock();
            // Reuse the dropped frame's buffer.
            let mut buf = st.newest.take().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(jpeg);
            st.newest = Some(buf);
            st.count += 1;
            shared.changed.notify_all();
        });
    }
    shared.lock().ended = true;
    shared.changed.notify_all();
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "closed its output".into(),
    }
}

impl FrameSource for RpicamCamera {
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError> {
        let Some(r) = self.running.as_mut() else {
            return Err(self.error(CameraErrorKind::Disconnected, "not running; re-opening"));
        };
        let shared = r.shared.clone();
        let st = shared.lock();
        let (mut st, _) = shared
            .changed
            .wait_timeout_while(st, self.timeout, |s| s.newest.is_none() && !s.ended)
            .unwrap_or_else(|p| p.into_inner());
        if let Some(jpeg) = st.newest.take() {
            let count = st.count;
            drop(st);
            self.sequence = Some(count);
            return mjpeg_to_rgb(&jpeg, frame)
                .map_err(|e| self.error(CameraErrorKind::BadFrame, format!("bad frame: {e}")));
        }
        if st.ended {
            // The output closes as the child exits: give it a moment to have a status and to
            // finish what it says on stderr (its last words are read on another thread).
            let deadline = Instant::now() + Duration::from_millis(200);
            let (mut st, _) = shared
                .changed
                .wait_timeout_while(st, Duration::from_millis(200), |s| !s.stderr_ended)
                .unwrap_or_else(|p| p.into_inner());
            let stderr = std::mem::take(&mut st.last_stderr);
            drop(st);
            let mut status = r.child.try_wait().ok().flatten();
            while status.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                status = r.child.try_wait().ok().flatten();
            }
            let what = format!(
                "{}{}",
                describe(status),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(" (last said: {stderr})")
                }
            );
            self.stop();
            return Err(self.error(CameraErrorKind::Disconnected, what));
        }
        Err(self.error(
            CameraErrorKind::Timeout,
            format!("no frame within {} s", self.timeout.as_secs_f64()),
        ))
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        self.stop();
        self.sequence = None;
        self.running = Some(self.spawn()?);
        Ok(())
    }

    fn sequence(&self) -> Option<u64> {
        self.sequence
    }
}

impl Drop for RpicamCamera {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = MjpegSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |f| out.push(f.to_vec()));
        }
        out
    }

    #[test]
    fn frames_split_across_reads_and_garbage_between_them_are_found() {
        let a: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9];
        let b: &[u8] = &[0xFF, 0xD8, 0xFF, 0xDB, 3, 0xFF, 0x00, 0xFF, 0xD9];
        let stream: Vec<u8> = [&[7u8, 0xFF, 0xD9, 9][..], a, &[0, 0xFF, 0xD8], b].concat();
        for cut in 0..stream.len() {
            let got = split(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(got, vec![a.to_vec(), b.to_vec()], "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split(&bytes), vec![a.to_vec(), b.to_vec()]);
    }

    #[test]
    fn an_endless_frame_is_dropped_and_the_next_one_found() {
        let mut s = MjpegSplitter::default();
        let mut out = Vec::new();
        s.push(&[0xFF, 0xD8, 0xFF, 0xE0], |f| out.push(f.to_vec()));
        s.push(&vec![0u8; MAX_FRAME_BYTES + 10], |f| out.push(f.to_vec()));
        assert!(s.buf.len() <= MAX_FRAME_BYTES + 16);
        let good: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xD9];
        s.push(good, |f| out.push(f.to_vec()));
        assert_eq!(out, vec![good.to_vec()]);
    }
}
