//! What the console adds to the library's control-API client
//! ([`crate::door::control_api::client::DoorClient`]): the door's socket and operator key, one
//! short connection per action (the door serves few connections), the `people add` JSON, and
//! a live frame as the browser takes it. Call it from a blocking thread
//! (`tokio::task::spawn_blocking`), never from the async runtime's own threads.

use crate::door::control_api::client::{ClientError, DoorClient, LiveFrame};
use std::path::{Path, PathBuf};

/// One live-view frame: what the door saw (its `frame` JSON) and its JPEG.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's JSON (seq, at_ms, width, height, jpeg, faces), for `/api/live`.
    pub json: String,
    /// Its JPEG, for `/live.jpg`.
    pub jpeg: Vec<u8>,
}

impl Frame {
    /// The frame as the browser takes it.
    pub fn of(frame: LiveFrame) -> Self {
        Self {
            json: serde_json::to_string(&frame.meta).unwrap_or_else(|_| "null".to_owned()),
            jpeg: frame.jpeg,
        }
    }
}

/// One face of a `people add` request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewFace {
    /// The embedding, as the gallery keeps it.
    pub embedding: Vec<f32>,
    /// The PNG crop (people/crops.rs format), base64.
    pub crop_png: String,
}

/// A `people add` request's JSON.
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
    pub fn connect(&self) -> Result<DoorClient, ClientError> {
        DoorClient::connect(&self.socket, self.operator_key.as_deref())
    }
}

/// What went wrong, as a page or a log line may show it (bounded, control characters escaped).
pub fn shown(e: &ClientError) -> String {
    super::clean(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    /// A door that answers one connection's lines with `answers` in turn and records them.
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
        assert_eq!(door.connect().unwrap().picture(7).unwrap(), b"\x89PNG");
        let seen = t.join().unwrap();
        assert_eq!(
            seen,
            vec![format!("operator {}", "k".repeat(32)), "picture 7".into()]
        );
    }

    #[test]
    fn a_refusal_is_shown_escaped_and_unknown_pictures_parse() {
        let (_d, path, t) = fake(vec![
            b"ERR not allowed: wrong operator key\x1b[2J\n".to_vec()
        ]);
        let e = Door::new(&path, Some("x".repeat(32)))
            .connect()
            .unwrap_err();
        let text = shown(&e);
        assert!(text.contains("wrong operator key"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        t.join().unwrap();
        let (_d, path, t) = fake(vec![b"OK pictures 2\n9\n4\n".to_vec()]);
        let door = Door::new(&path, None);
        assert_eq!(
            door.connect().unwrap().unknown_pictures().unwrap(),
            vec![9, 4]
        );
        assert_eq!(t.join().unwrap(), vec!["pictures unknown".to_string()]);
    }

    #[test]
    fn add_person_sends_its_json_as_login_at_console() {
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
                .connect()
                .unwrap()
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
