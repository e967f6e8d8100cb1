//! The console's client of the door's control API (`crate::door::control_api`): exactly the
//! requests the console makes, over a blocking Unix socket, one connection per request, each
//! opened with the operator key (`operator KEY`) when one is configured. Call it from a blocking
//! thread (`tokio::task::spawn_blocking`), never from the async runtime's own threads.
//!
//! Answers are `OK ...` or `ERR ...` lines; `picture`/`snapshot` answer `OK WORD LEN` followed by
//! LEN bytes; `view` answers `OK view` then `frame JSON` lines each followed by a JPEG.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest answer line read (a status with its recent decisions is a few KB).
const MAX_ANSWER: u64 = 1 << 20;
/// The largest picture or snapshot taken from the door (a full-resolution JPEG at quality 90).
pub const MAX_IMAGE: usize = 16 << 20;
/// The largest live-view JPEG (at most 640 px wide).
pub const MAX_FRAME: usize = 2 << 20;
/// How long one request may take.
const ANSWER: Duration = Duration::from_secs(15);
/// The door's longest request line (`control_api::MAX_LINE`).
const MAX_LINE: usize = crate::door::control_api::MAX_LINE;
/// Most pictures a `pictures dismiss` takes.
pub const MAX_DISMISS: usize = 100;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum DoorError {
    /// The socket could not be reached or broke.
    #[error("the door cannot be reached: {0}")]
    Io(#[from] io::Error),
    /// The door answered `ERR ...`.
    #[error("the door refused: {0}")]
    Refused(String),
    /// The door answered something this console does not understand.
    #[error("the door answered something unexpected: {0}")]
    Protocol(String),
}

/// One live-view frame: what the door saw (JSON as the door sends it) and its JPEG.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's `frame` JSON (seq, at_ms, width, height, jpeg, faces).
    pub json: String,
    /// Its JPEG.
    pub jpeg: Vec<u8>,
}

/// One face of a `people add` request (A5).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewFace {
    /// The embedding, as the gallery keeps it.
    pub embedding: Vec<f32>,
    /// The PNG crop (people/crops.rs format), base64.
    pub crop_png: String,
}

/// A `people add` request's JSON (A5).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddPerson {
    /// The display name.
    pub name: String,
    /// `None`: a new person; an existing id: faces added to them.
    pub id: Option<String>,
    /// 1 to 10 faces.
    pub faces: Vec<NewFace>,
    /// Add even when a face looks like someone else.
    pub force: bool,
    /// Decision pictures these faces came from (deleted by the door once added).
    pub from_pictures: Vec<u64>,
}

/// The door, reached through its control API socket.
#[derive(Debug, Clone)]
pub struct Door {
    socket: PathBuf,
    operator_key: Option<String>,
}

fn protocol(what: impl Into<String>) -> DoorError {
    DoorError::Protocol(super::clean(&what.into()))
}

impl Door {
    /// The door at `socket`, shown `operator_key` on every connection when there is one.
    pub fn new(socket: &Path, operator_key: Option<String>) -> Self {
        Self {
            socket: socket.to_owned(),
            operator_key,
        }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A connection, past the operator key.
    fn connect(&self) -> Result<BufReader<UnixStream>, DoorError> {
        let stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(ANSWER))?;
        stream.set_write_timeout(Some(ANSWER))?;
        let mut conn = BufReader::new(stream);
        if let Some(key) = &self.operator_key {
            conn.get_mut()
                .write_all(format!("operator {key}\n").as_bytes())?;
            let answer = ok(&read_line(&mut conn)?)?;
            if answer != "operator" {
                return Err(protocol(answer));
            }
        }
        Ok(conn)
    }

    /// One request line (and optional payload), its answer line.
    fn ask(&self, request: &str, payload: Option<&[u8]>) -> Result<String, DoorError> {
        let mut conn = self.connect()?;
        send(&mut conn, request, payload)?;
        ok(&read_line(&mut conn)?)
    }

    /// `status`: the door's state as JSON.
    pub fn status(&self) -> Result<String, DoorError> {
        self.ask("status", None)
    }

    /// `events`: calls `each` with every audit line (JSON) until it returns `false` or the door
    /// goes. Lines come as they happen, so no read timeout applies.
    pub fn events(&self, mut each: impl FnMut(&str) -> bool) -> Result<(), DoorError> {
        let mut conn = self.connect()?;
        send(&mut conn, "events", None)?;
        ok(&read_line(&mut conn)?)?;
        conn.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))?;
        loop {
            match read_line(&mut conn) {
                Ok(line) if line.is_empty() => return Ok(()),
                Ok(line) => {
                    if !each(&line) {
                        return Ok(());
                    }
                }
                // Quiet for a while: ask the caller whether anyone still listens.
                Err(DoorError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !each("") {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `view`: calls `each` with every frame until it returns `false` or the door goes.
    pub fn view(&self, mut each: impl FnMut(Frame) -> bool) -> Result<(), DoorError> {
        let mut conn = self.connect()?;
        send(&mut conn, "view", None)?;
        let answer = ok(&read_line(&mut conn)?)?;
        if answer != "view" {
            return Err(protocol(answer));
        }
        loop {
            let line = read_line(&mut conn)?;
            if line.is_empty() {
                return Ok(());
            }
            let json = line
                .strip_prefix("frame ")
                .ok_or_else(|| protocol(line.clone()))?;
            let v: serde_json::Value =
                serde_json::from_str(json).map_err(|e| protocol(e.to_string()))?;
            let len = v
                .get("jpeg")
                .and_then(serde_json::Value::as_u64)
                .filter(|&n| n as usize <= MAX_FRAME)
                .ok_or_else(|| protocol("a frame without a usable jpeg length"))?;
            let mut jpeg = vec![0; len as usize];
            conn.read_exact(&mut jpeg)?;
            if !each(Frame {
                json: json.to_owned(),
                jpeg,
            }) {
                return Ok(());
            }
        }
    }

    /// An `OK WORD LEN` answer and its LEN bytes.
    fn bytes(&self, request: &str, word: &str) -> Result<Vec<u8>, DoorError> {
        let mut conn = self.connect()?;
        send(&mut conn, request, None)?;
        let answer = ok(&read_line(&mut conn)?)?;
        let len = answer
            .strip_prefix(word)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= MAX_IMAGE)
            .ok_or_else(|| protocol(answer.clone()))?;
        let mut out = vec![0; len];
        conn.read_exact(&mut out)?;
        Ok(out)
    }

    /// `snapshot`: the newest camera frame (JPEG, full resolution).
    pub fn snapshot(&self) -> Result<Vec<u8>, DoorError> {
        self.bytes("snapshot", "snapshot")
    }

    /// `picture SEQ`: the face chip (PNG) kept with the audit line `seq`.
    pub fn picture(&self, seq: u64) -> Result<Vec<u8>, DoorError> {
        self.bytes(&format!("picture {seq}"), "picture")
    }

    /// `pictures unknown`: the seqs of the kept pictures of unknown faces, newest first.
    pub fn unknown_pictures(&self) -> Result<Vec<u64>, DoorError> {
        let mut conn = self.connect()?;
        send(&mut conn, "pictures unknown", None)?;
        let answer = ok(&read_line(&mut conn)?)?;
        let n = answer
            .strip_prefix("pictures ")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= 500)
            .ok_or_else(|| protocol(answer.clone()))?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let line = read_line(&mut conn)?;
            out.push(line.trim().parse().map_err(|_| protocol(line.clone()))?);
        }
        Ok(out)
    }

    /// `people add`: the id the person has.
    pub fn add_person(&self, person: &AddPerson, by: &str) -> Result<String, DoorError> {
        let json = serde_json::to_vec(person).map_err(|e| protocol(e.to_string()))?;
        let answer = self.ask(&format!("people add {} by {by}", json.len()), Some(&json))?;
        answer
            .strip_prefix("added ")
            .map(str::to_owned)
            .ok_or_else(|| protocol(answer))
    }

    /// `people remove ID`.
    pub fn remove_person(&self, id: &str, by: &str) -> Result<String, DoorError> {
        self.ask(&format!("people remove {id} by {by}"), None)
    }

    /// `people rename ID`: `name` is the new display name.
    pub fn rename(&self, id: &str, name: &str, by: &str) -> Result<String, DoorError> {
        self.ask(
            &format!("people rename {id} {} by {by}", name.len()),
            Some(name.as_bytes()),
        )
    }

    /// `pictures dismiss`: the number of pictures deleted. Sent in as many requests as the
    /// door's line length needs.
    pub fn dismiss(&self, seqs: &[u64], by: &str) -> Result<usize, DoorError> {
        let mut done = 0;
        let mut batch: Vec<String> = Vec::new();
        let flush = |batch: &mut Vec<String>, done: &mut usize| -> Result<(), DoorError> {
            if batch.is_empty() {
                return Ok(());
            }
            let answer = self.ask(
                &format!("pictures dismiss {} by {by}", batch.join(",")),
                None,
            )?;
            *done += answer
                .strip_prefix("dismissed ")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| protocol(answer.clone()))?;
            batch.clear();
            Ok(())
        };
        for seq in seqs.iter().take(MAX_DISMISS) {
            let len: usize = batch.iter().map(|s| s.len() + 1).sum::<usize>();
            if len + 21 + by.len() + 24 > MAX_LINE {
                flush(&mut batch, &mut done)?;
            }
            batch.push(seq.to_string());
        }
        flush(&mut batch, &mut done)?;
        Ok(done)
    }

    /// `unlock by NAME`.
    pub fn unlock(&self, by: &str) -> Result<String, DoorError> {
        self.ask(&format!("unlock by {by}"), None)
    }

    /// `lockdown on|off by NAME`.
    pub fn lockdown(&self, on: bool, by: &str) -> Result<String, DoorError> {
        let state = if on { "on" } else { "off" };
        self.ask(&format!("lockdown {state} by {by}"), None)
    }
}

fn send(
    conn: &mut BufReader<UnixStream>,
    request: &str,
    payload: Option<&[u8]>,
) -> Result<(), DoorError> {
    let stream = conn.get_mut();
    stream.write_all(request.as_bytes())?;
    stream.write_all(b"\n")?;
    if let Some(p) = payload {
        // A door that refuses the length answers and stops reading: its answer counts.
        let _ = stream.write_all(p);
    }
    Ok(())
}

/// One answer line without its newline; empty when the door closed the connection.
fn read_line(conn: &mut impl BufRead) -> Result<String, DoorError> {
    let mut out = Vec::new();
    conn.take(MAX_ANSWER).read_until(b'\n', &mut out)?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The text after `OK`, or the refusal after `ERR`.
fn ok(line: &str) -> Result<String, DoorError> {
    if let Some(rest) = line.strip_prefix("OK") {
        Ok(rest.trim_start().to_owned())
    } else if let Some(rest) = line.strip_prefix("ERR") {
        Err(DoorError::Refused(super::clean(rest.trim_start())))
    } else if line.is_empty() {
        Err(DoorError::Protocol("the door closed the connection".into()))
    } else {
        Err(protocol(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A door that answers each connection's lines with `answers` in turn and records them.
    fn fake(
        answers: Vec<Vec<u8>>,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        std::thread::JoinHandle<Vec<String>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut seen = Vec::new();
            for a in answers {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line.trim_end().to_owned());
                r.get_mut().write_all(&a).unwrap();
            }
            seen
        });
        (dir, path, t)
    }

    #[test]
    fn operator_key_then_picture_bytes() {
        let mut png = b"OK picture 4\n".to_vec();
        png.extend_from_slice(b"\x89PNG");
        let (_d, path, t) = fake(vec![b"OK operator\n".to_vec(), png]);
        let door = Door::new(&path, Some("k".repeat(32)));
        assert_eq!(door.picture(7).unwrap(), b"\x89PNG");
        let seen = t.join().unwrap();
        assert_eq!(
            seen,
            vec![format!("operator {}", "k".repeat(32)), "picture 7".into()]
        );
    }

    #[test]
    fn refusal_and_unknown_pictures() {
        let (_d, path, t) = fake(vec![b"ERR not allowed: wrong operator key\n".to_vec()]);
        let door = Door::new(&path, Some("x".repeat(32)));
        assert!(
            matches!(door.status(), Err(DoorError::Refused(r)) if r.contains("wrong operator key"))
        );
        t.join().unwrap();
        let (_d, path, t) = fake(vec![b"OK pictures 2\n9\n4\n".to_vec()]);
        let door = Door::new(&path, None);
        assert_eq!(door.unknown_pictures().unwrap(), vec![9, 4]);
        assert_eq!(t.join().unwrap(), vec!["pictures unknown".to_string()]);
    }

    #[test]
    fn view_frames_and_add_person() {
        let mut answer = b"OK view\n".to_vec();
        for seq in 1..=2 {
            answer.extend_from_slice(
                format!("frame {{\"seq\":{seq},\"at_ms\":1,\"width\":4,\"height\":2,\"jpeg\":3,\"faces\":[]}}\n").as_bytes(),
            );
            answer.extend_from_slice(b"\xff\xd8\xff");
        }
        let (_d, path, t) = fake(vec![answer]);
        let door = Door::new(&path, None);
        let mut frames = Vec::new();
        door.view(|f| {
            frames.push(f);
            frames.len() < 2
        })
        .unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[1].json.contains("\"seq\":2"));
        assert_eq!(frames[1].jpeg, b"\xff\xd8\xff");
        assert_eq!(t.join().unwrap(), vec!["view".to_string()]);

        // A frame that announces an oversized JPEG is refused, not allocated.
        let big = format!("OK view\nframe {{\"jpeg\":{}}}\n", MAX_FRAME + 1).into_bytes();
        let (_d, path, t) = fake(vec![big]);
        assert!(matches!(
            Door::new(&path, None).view(|_| true),
            Err(DoorError::Protocol(_))
        ));
        t.join().unwrap();

        let (_d, path, t) = fake(vec![b"OK added ada-2\n".to_vec()]);
        let person = AddPerson {
            name: "Ada".into(),
            id: None,
            faces: vec![NewFace {
                embedding: vec![0.5; 4],
                crop_png: "iVBO".into(),
            }],
            force: false,
            from_pictures: vec![7],
        };
        assert_eq!(
            Door::new(&path, None)
                .add_person(&person, "ada@console")
                .unwrap(),
            "ada-2"
        );
        let seen = t.join().unwrap();
        assert!(
            seen[0].starts_with("people add ") && seen[0].ends_with(" by ada@console"),
            "{seen:?}"
        );
    }
}
