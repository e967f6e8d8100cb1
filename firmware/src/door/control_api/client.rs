//! A client of the door's control API that keeps its connection: for the web console, which
//! sends the operator key once and then asks for the status, the live view, snapshots and
//! gallery changes. Every read is bounded: an answer line to [`MAX_ANSWER`] bytes, a `frame`
//! line to [`live::MAX_META`], bytes after an `OK WORD LEN` answer to [`MAX_PAYLOAD`] (a larger
//! LEN is refused before anything is read), and each wait to the client's timeout.
//!
//! ```text
//! let mut door = DoorClient::connect(socket, Some(key))?;   // `operator KEY` -> OK operator
//! let status = door.status()?;                               // serde_json::Value
//! let jpeg = door.snapshot()?;                               // full resolution, quality 90
//! for frame in door.view()? { let frame = frame?; ... }      // the connection is the view's
//! door.set_policy("ada", &PolicyRequest { .. }, "ada@console")?; // `people policy`
//! ```
//!
//! The gallery requests (`people add|remove|rename|policy|credential`, `pictures ...`) and
//! `unlock`/`lockdown` are here too, each answered on the same connection.

use super::live::{self, FrameMeta};
use super::{read_answer, split_answer, ANSWER, PAYLOAD_TIME};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest answer line (a status with its recent decisions is a few KB).
pub const MAX_ANSWER: usize = 1 << 20;
/// Most bytes an `OK WORD LEN` answer may announce (a JPEG, a PNG).
pub const MAX_PAYLOAD: usize = live::MAX_JPEG;
/// The most a decision picture can be (the door never keeps a larger one).
const PICTURE_MAX: usize = crate::records::faces::MAX_PICTURE_BYTES as usize;
/// Most lines an `OK WORD N` answer may announce ([`DoorClient::request_lines`]).
pub const MAX_LINES: usize = 10_000;
/// How long a client waits for an answer, or for the next live frame, by default.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the door.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached (door not running, no permission).
    #[error("cannot reach the door's control API at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The connection failed or timed out.
    #[error("talking to the door: {0}")]
    Io(#[from] io::Error),
    /// The door answered `ERR ...` (the text after `ERR `).
    #[error("the door refused: {0}")]
    Refused(String),
    /// The door's answer is not what the request expects (or is over a bound).
    #[error("unexpected answer from the door: {0}")]
    Protocol(String),
}

/// What the client's functions return.
pub type Result<T> = std::result::Result<T, ClientError>;

/// One live frame: its JSON and the JPEG.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFrame {
    /// The record's JSON (sizes, faces, verdicts).
    pub meta: FrameMeta,
    /// The JPEG (`meta.width` x `meta.height`).
    pub jpeg: Vec<u8>,
}

/// A connection to the door's control API.
#[derive(Debug)]
pub struct DoorClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl DoorClient {
    /// Connects to `socket`; with `operator_key`, sends it first (the connection is then an
    /// admin's; a wrong key is [`ClientError::Refused`]).
    pub fn connect(socket: &Path, operator_key: Option<&str>) -> Result<Self> {
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
            path: socket.to_owned(),
            source,
        })?;
        let writer = stream.try_clone()?;
        let mut client = Self {
            reader: BufReader::new(stream),
            writer,
        };
        client.set_timeout(TIMEOUT)?;
        if let Some(key) = operator_key {
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(ClientError::Protocol(
                    "an operator key is one word".to_owned(),
                ));
            }
            let answer = client.request(&format!("operator {key}"))?;
            if answer != "operator" {
                return Err(ClientError::Protocol(shown(&answer)));
            }
        }
        Ok(client)
    }

    /// How long each read and write may wait (default [`TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// Sends one request line; the answer's text after `OK ` (an `ERR` answer is
    /// [`ClientError::Refused`]).
    pub fn request(&mut self, line: &str) -> Result<String> {
        self.send(line)?;
        self.answer()
    }

    /// Sends a request line announcing a payload (`site gallery LEN`, `people add LEN by NAME`)
    /// and the payload; the answer as [`DoorClient::request`]'s. A door that refuses the
    /// length answers without reading the bytes: its answer is returned.
    pub fn request_with_payload(&mut self, line: &str, payload: &[u8]) -> Result<String> {
        self.send(line)?;
        self.writer.set_write_timeout(Some(ANSWER + PAYLOAD_TIME))?;
        let sent = self.writer.write_all(payload);
        let answer = self.answer();
        if matches!(
            answer,
            Err(ClientError::Protocol(_)) | Err(ClientError::Io(_))
        ) {
            sent?;
        }
        answer
    }

    /// Sends a request answered `OK WORD LEN` and LEN bytes (`snapshot`, `picture SEQ`); the
    /// bytes. LEN over [`MAX_PAYLOAD`] is refused unread (the connection is then unusable).
    pub fn request_bytes(&mut self, line: &str) -> Result<Vec<u8>> {
        self.request_bytes_within(line, MAX_PAYLOAD)
    }

    /// As [`DoorClient::request_bytes`], with LEN over `max` refused unread.
    fn request_bytes_within(&mut self, line: &str, max: usize) -> Result<Vec<u8>> {
        let answer = self.request(line)?;
        let len = last_number(&answer)?;
        if len > max {
            return Err(ClientError::Protocol(format!(
                "the door announced {len} bytes, more than {max}"
            )));
        }
        let mut bytes = vec![0; len];
        self.reader.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    /// Sends a request answered `OK WORD N` and N lines (`pictures unknown`); the lines.
    /// N over [`MAX_LINES`] is refused.
    pub fn request_lines(&mut self, line: &str) -> Result<Vec<String>> {
        let answer = self.request(line)?;
        let n = last_number(&answer)?;
        if n > MAX_LINES {
            return Err(ClientError::Protocol(format!(
                "the door announced {n} lines, more than {MAX_LINES}"
            )));
        }
        (0..n).map(|_| self.line(MAX_ANSWER)).collect()
    }

    /// The door's `status` (JSON).
    pub fn status(&mut self) -> Result<serde_json::Value> {
        let text = self.request("status")?;
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol(format!("status: {e}")))
    }

    /// The newest camera frame as a JPEG (full resolution, quality 90). Needs an admin.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.request_bytes("snapshot")
    }

    /// `picture SEQ`: the PNG kept with audit line `seq` (needs an admin).
    pub fn picture(&mut self, seq: u64) -> Result<Vec<u8>> {
        self.request_bytes_within(&format!("picture {seq}"), PICTURE_MAX)
    }

    /// `site picture SEQ`: the PNG of a stranger's denial, for the site link (the door judges
    /// whether it may have it: `[mqtt] unknown_face_picture`).
    pub fn site_picture(&mut self, seq: u64) -> Result<Vec<u8>> {
        self.request_bytes_within(&format!("site picture {seq}"), PICTURE_MAX)
    }

    /// `pictures unknown`: the seqs of the kept pictures of unknown faces, newest first.
    pub fn unknown_pictures(&mut self) -> Result<Vec<u64>> {
        self.request_lines("pictures unknown")?
            .iter()
            .map(|l| {
                l.trim()
                    .parse()
                    .map_err(|_| ClientError::Protocol(format!("not a seq: {}", shown(l))))
            })
            .collect()
    }

    /// `pictures dismiss`: the number of pictures deleted; sent in as many requests as the
    /// door's line length needs (at most [`super::people::MAX_DISMISS`] seqs in all).
    pub fn dismiss(&mut self, seqs: &[u64], by: &str) -> Result<usize> {
        let mut done = 0;
        let seqs = &seqs[..seqs.len().min(super::people::MAX_DISMISS)];
        // 20 digits and a comma a seq; the words around them and NAME fit in the rest.
        let per = (super::MAX_LINE.saturating_sub(40 + by.len()) / 21).max(1);
        for batch in seqs.chunks(per) {
            let list: Vec<String> = batch.iter().map(u64::to_string).collect();
            let answer = self.request(&format!("pictures dismiss {} by {by}", list.join(",")))?;
            done += answer
                .strip_prefix("dismissed ")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ClientError::Protocol(shown(&answer)))?;
        }
        Ok(done)
    }

    /// `people add LEN by NAME` with `request`'s JSON (`{"name", "id", "faces", "force",
    /// "from_pictures"}`): the person's id.
    pub fn add_person(&mut self, request: &impl serde::Serialize, by: &str) -> Result<String> {
        let json = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let answer =
            self.request_with_payload(&format!("people add {} by {by}", json.len()), &json)?;
        answer
            .strip_prefix("added ")
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol(shown(&answer)))
    }

    /// `people remove ID by NAME`.
    pub fn remove_person(&mut self, id: &str, by: &str) -> Result<String> {
        self.request(&format!("people remove {id} by {by}"))
    }

    /// `people rename ID LEN by NAME` and the new display name.
    pub fn rename(&mut self, id: &str, name: &str, by: &str) -> Result<String> {
        self.request_with_payload(
            &format!("people rename {id} {} by {by}", name.len()),
            name.as_bytes(),
        )
    }

    /// `people policy ID LEN by NAME` and the policy's JSON: the person's whole policy replaced.
    pub fn set_policy(
        &mut self,
        id: &str,
        policy: &crate::people::policy::PolicyRequest,
        by: &str,
    ) -> Result<String> {
        let json = serde_json::to_vec(policy).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.request_with_payload(&format!("people policy {id} {} by {by}", json.len()), &json)
    }

    /// `people credential ID ... by NAME`: the person's card set, or cleared (`None`).
    pub fn set_credential(
        &mut self,
        id: &str,
        credential: Option<crate::people::credential::Credential>,
        by: &str,
    ) -> Result<String> {
        let what = match credential {
            None => "clear".to_owned(),
            Some(c) => {
                let (a, b) = c.parts();
                format!("{} {a} {b}", c.format().as_str())
            }
        };
        self.request(&format!("people credential {id} {what} by {by}"))
    }

    /// `unlock by NAME`: through the door's gate.
    pub fn unlock(&mut self, by: &str) -> Result<String> {
        self.request(&format!("unlock by {by}"))
    }

    /// `lockdown on|off by NAME`.
    pub fn lockdown(&mut self, on: bool, by: &str) -> Result<String> {
        let state = if on { "on" } else { "off" };
        self.request(&format!("lockdown {state} by {by}"))
    }

    /// `events`: calls `each` with every audit line until it returns `false` or the door goes.
    /// When no line comes within `quiet`, `each` is called with `""` (is anyone still
    /// listening?). The connection is the events'.
    pub fn events(mut self, quiet: Duration, mut each: impl FnMut(&str) -> bool) -> Result<()> {
        let answer = self.request("events")?;
        if answer != "events" {
            return Err(ClientError::Protocol(shown(&answer)));
        }
        self.writer.set_read_timeout(Some(quiet))?;
        loop {
            match self.line(MAX_ANSWER) {
                Ok(line) => {
                    if !each(&line) {
                        return Ok(());
                    }
                }
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !each("") {
                        return Ok(());
                    }
                }
                Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The live view (needs an admin): the frames as the door sends them, at most 4 a second,
    /// until the door goes, the iterator is dropped, or no frame comes within the timeout
    /// (an `Err`; a door whose camera is down sends none). The connection is the view's.
    pub fn view(mut self) -> Result<LiveFrames> {
        let answer = self.request("view")?;
        if answer != "view" {
            return Err(ClientError::Protocol(shown(&answer)));
        }
        Ok(LiveFrames {
            client: self,
            done: false,
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        if line.contains('\n') {
            return Err(ClientError::Protocol("a request is one line".to_owned()));
        }
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        Ok(())
    }

    fn answer(&mut self) -> Result<String> {
        let line = read_answer(&mut self.reader)?;
        match split_answer(&line) {
            Ok(text) => Ok(text),
            Err(_) if line.is_empty() => Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the door closed the connection",
            ))),
            Err(e) if line.starts_with("ERR") => Err(ClientError::Refused(e)),
            Err(e) => Err(ClientError::Protocol(e)),
        }
    }

    /// One line of at most `max` bytes (without its newline).
    fn line(&mut self, max: usize) -> Result<String> {
        let mut out = Vec::new();
        (&mut self.reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut out)?;
        if out.last() != Some(&b'\n') {
            return Err(if out.is_empty() {
                io::Error::from(io::ErrorKind::UnexpectedEof).into()
            } else {
                ClientError::Protocol(format!("a line longer than {max} bytes"))
            });
        }
        out.pop();
        String::from_utf8(out).map_err(|_| ClientError::Protocol("not UTF-8".to_owned()))
    }
}

/// The frames of a live view ([`DoorClient::view`]); ends after the first error.
#[derive(Debug)]
pub struct LiveFrames {
    client: DoorClient,
    done: bool,
}

impl LiveFrames {
    fn next_frame(&mut self) -> Result<LiveFrame> {
        let line = self.client.line(live::MAX_META)?;
        let json = line
            .strip_prefix("frame ")
            .ok_or_else(|| ClientError::Protocol(shown(&line)))?;
        let meta: FrameMeta =
            serde_json::from_str(json).map_err(|e| ClientError::Protocol(format!("frame: {e}")))?;
        if meta.jpeg > live::MAX_JPEG {
            return Err(ClientError::Protocol(format!(
                "a frame of {} bytes, more than {}",
                meta.jpeg,
                live::MAX_JPEG
            )));
        }
        let mut jpeg = vec![0; meta.jpeg];
        self.client.reader.read_exact(&mut jpeg)?;
        Ok(LiveFrame { meta, jpeg })
    }
}

impl Iterator for LiveFrames {
    type Item = Result<LiveFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let frame = self.next_frame();
        self.done = frame.is_err();
        Some(frame)
    }
}

/// The last word of `answer` as a count (`snapshot 1234` -> 1234).
fn last_number(answer: &str) -> Result<usize> {
    answer
        .split_ascii_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("no length in {}", shown(answer))))
}

/// At most a few escaped characters of what the door said.
fn shown(s: &str) -> String {
    super::shown(s)
}
