//! The door's local control API: one Unix socket (`[control] socket`, by default
//! `/run/facegate/control.sock`), one request a line, one answer a line. It is the one way in
//! for everything outside the door's own loop: the admin CLI (`facegate door ...`), and the
//! site link and web console to come. Requests reach the loop as [`ApiRequest`]s; an unlock or
//! a lockdown enters the gate like any other source and is audited with who asked.
//!
//! Protocol (ASCII, `\n`-terminated, at most [`MAX_LINE`] bytes):
//!
//! ```text
//! status                      -> OK {"door":{...},"status":"...","camera_ok":true,"recent":[...]}
//! events                      -> OK events, then one audit line (JSON) per line as they happen
//! unlock by NAME              -> OK opened | ERR refused: REASON
//! lockdown on|off by NAME     -> OK lockdown on|off
//! reload by NAME              -> OK reload requested
//! site reset by NAME          -> OK site versions reset (were ...)
//! site command ENVELOPE       -> OK taken | OK nothing | ERR refused: WORD ...
//! site gallery LEN            -> (then LEN bytes: a signed gallery) OK taken ... | ERR refused: ...
//! site refused command|gallery WORD COUNT -> OK recorded
//! site picture SEQ            -> OK picture LEN, then LEN bytes (PNG) | ERR refused: WORD
//! operator KEY                -> OK operator | ERR not allowed: wrong operator key
//! view                        -> OK view, then records `frame JSON\n` + JSON.jpeg bytes of JPEG
//! snapshot                    -> OK snapshot LEN\n + LEN bytes of JPEG | ERR no frame yet
//! picture SEQ                 -> OK picture LEN, then LEN bytes (PNG) | ERR no picture for SEQ
//! pictures unknown            -> OK pictures N, then N lines: SEQ (newest first, at most 500)
//! pictures dismiss SEQ[,SEQ..] by NAME -> OK dismissed N   (at most 100 SEQs)
//! people add LEN by NAME      -> (then LEN bytes of JSON, <= 1 MiB) OK added ID | ERR duplicate: ...
//! people remove ID by NAME    -> OK removed ID
//! people rename ID LEN by NAME -> (then LEN bytes: the new name, UTF-8) OK renamed ID
//! people policy ID LEN by NAME -> (then LEN bytes of JSON, <= 4 KiB) OK policy ID
//! people credential ID wiegand26|wiegand34 FACILITY CARD by NAME -> OK credential ID
//! people credential ID raw BITS VALUE by NAME | people credential ID clear by NAME
//! help                        -> OK the commands
//! anything else               -> ERR what is wrong (the connection stays open)
//! ```
//!
//! NAME is who asks, recorded in the audit log: 1 to 64 of `A-Z a-z 0-9 . _ - @`. Who may
//! connect at all is decided by the socket file's permissions (0660, the daemon's group, in a
//! 0750 runtime directory): the kernel checks the peer's real credentials at `connect`. The
//! peer's uid and pid as the kernel reports them (`SO_PEERCRED`) are recorded too, and decide
//! its [`Role`]: root and the door's own user may do everything; anyone else (the site link's
//! user) may read the status and events and hand over signed site messages, which the door
//! checks itself ([`crate::site::trust`]): no unsigned unlock, lockdown change or reload.
//! A connection that sends the operator key (`[control] operator_key`, [`operator`]) is
//! [`Role::Admin`] for the rest of it whoever connected (the web console: inside the unit's
//! user namespace its uid cannot tell it apart); [`operator::WRONG_KEYS`] wrong keys close it.
//!
//! `view` (the live view, [`live`]) and `snapshot` are for admins; at most
//! [`live::MAX_VIEWERS`] viewers at once, each sent only the newest frame: the door's loop
//! never waits for a viewer, and encodes nothing while nobody watches.
//!
//! `site picture SEQ` ([`site_picture`]) gives the site link the picture of a stranger's denial
//! when `[mqtt] unknown_face_picture` is on, judged by the loop; nothing else of the pictures.
//!
//! The decision pictures and gallery changes (admin only) are served in [`people`]: `people add`
//! takes `{"name":..,"id":null|..,"faces":[{"embedding":[..],"crop_png":"BASE64"}],"force":false,
//! "from_pictures":[SEQ..]}`.
//!
//! Bounds: [`MAX_CLIENTS`] connections at once (more are answered `ERR busy`), [`MAX_LINE`]
//! bytes a line (a longer one is answered and the connection closed), [`MAX_RATE`] requests a
//! second per connection, an idle connection closed after [`IDLE`]; the loop takes at most
//! [`PER_TICK`] requests per turn and never waits for a client (a slow event reader is dropped).

pub mod client;
pub mod live;
pub mod operator;
pub mod site_picture;

use crate::control::Control;
use crate::site::trust::{Accepted, Refusal, Refused, SiteTrust, Startup};
use live::{Picture, ViewerSlot};
use operator::{Offered, OperatorKey};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest request line, in bytes (without the newline).
pub const MAX_LINE: usize = 256;
/// The longest `site command ENVELOPE` line: a signed command and the request's words.
pub const MAX_SITE_LINE: usize = crate::site::trust::MAX_COMMAND_BYTES + 32;
/// Connections served at once.
pub const MAX_CLIENTS: usize = 8;
/// Requests a second one connection may make; faster ones wait.
pub const MAX_RATE: u32 = 20;
/// An idle connection is closed after this long.
pub const IDLE: Duration = Duration::from_secs(300);
/// Requests the door's loop takes per turn (the rest wait for the next turn, a few ms later).
pub const PER_TICK: usize = 8;
/// How long a connection waits for the loop's answer.
const ANSWER: Duration = Duration::from_secs(5);
/// How long a client may take to send a signed gallery's bytes.
const PAYLOAD_TIME: Duration = Duration::from_secs(30);
/// Longest single wait of the server's threads, so a stop is seen promptly.
const STEP: Duration = Duration::from_millis(50);
/// Events queued for one reader; a reader that falls further behind is dropped.
pub const EVENT_BACKLOG: usize = 256;

/// The default socket (the unit's `RuntimeDirectory=facegate`).
pub use crate::paths::DEFAULT_SOCKET;

/// `[control]`: the local control API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// The socket's path; empty: no control API.
    pub socket: PathBuf,
    /// A file holding the operator key ([`operator`]); empty: none.
    pub operator_key: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            operator_key: PathBuf::new(),
        }
    }
}

impl ControlConfig {
    /// The socket, unless the API is off.
    pub fn socket(&self) -> Option<&Path> {
        (!self.socket.as_os_str().is_empty()).then_some(self.socket.as_path())
    }

    /// The operator key, read from its file (`Ok(None)`: none configured). Read at start: a
    /// configured key that cannot be read or is too short stops the door's start.
    pub fn operator_key(&self) -> Result<Option<OperatorKey>, operator::KeyError> {
        if self.operator_key.as_os_str().is_empty() {
            return Ok(None);
        }
        OperatorKey::load(&self.operator_key).map(Some)
    }
}

/// A request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The door's state, alarms, camera health, recent decisions.
    Status,
    /// Every audit line from now on.
    Events,
    /// One remote unlock.
    Unlock {
        /// Who asks.
        by: String,
    },
    /// Lockdown on or off.
    Lockdown {
        /// On.
        on: bool,
        /// Who asks.
        by: String,
    },
    /// Reload the config and gallery (as SIGHUP).
    Reload {
        /// Who asks.
        by: String,
    },
    /// The commands.
    Help,
    /// The operator key: the connection becomes [`Role::Admin`] if it is right.
    Operator(Offered),
    /// The live view: frames with what the door made of their faces, until the client goes.
    View,
    /// The newest camera frame, full resolution, as a JPEG.
    Snapshot,
    /// Made by the server, never parsed: a stranger's picture sent to the site link, to audit.
    SitePictureSent {
        /// Its audit line's seq.
        seq: u64,
        /// The PNG's size.
        bytes: usize,
    },
    /// Made by the server, never parsed: a wrong operator key (the `n`th on its connection).
    OperatorRefused {
        /// How many wrong keys this connection has sent.
        n: u32,
    },
    /// A signed site command (lockdown, clear_lockdown, unlock), checked by the door.
    SiteCommand(Vec<u8>),
    /// A signed site gallery of this many bytes follows the line.
    SiteGallery(usize),
    /// The site link refused messages itself (before bothering the door): recorded, bounded.
    SiteRefused {
        /// A gallery (else a command).
        gallery: bool,
        /// Why.
        why: Refusal,
        /// How many since its last report.
        count: u32,
    },
    /// The picture of audit line SEQ for the site link, if it is a stranger's denial and
    /// `[mqtt] unknown_face_picture` is on ([`site_picture`]).
    SitePicture(u64),
    /// Every stored site version back to the door's clock (the recovery for a version that
    /// lies ahead).
    SiteReset {
        /// Who asks.
        by: String,
    },
    /// Made by the server, never parsed: a site message as the door judged it.
    Checked {
        /// A gallery (else a command).
        gallery: bool,
        /// What it asks, or why it was refused.
        result: Result<Accepted, Refused>,
    },
    /// Made by the server, never parsed: the site state found at start.
    SiteStartup(Startup),
    /// Made by the server, never parsed: the site versions were reset.
    SiteWasReset {
        /// Who asked.
        by: String,
        /// The versions before.
        before: crate::site::trust::SiteState,
    },
    // Decision pictures and gallery changes ([`people`]): admin only, served on the client's
    // thread; a change done reaches the loop as `PeopleChanged`.
    /// The PNG kept for audit line SEQ.
    Picture(u64),
    /// The SEQs of the kept pictures of unknown faces.
    PicturesUnknown,
    /// Delete these unknown faces' pictures.
    PicturesDismiss {
        /// Their audit lines' seqs (at most [`people::MAX_DISMISS`]).
        seqs: Vec<u64>,
        /// Who asks.
        by: String,
    },
    /// Enrol a person, or add faces to one: a JSON payload of this many bytes follows.
    PeopleAdd {
        /// The payload's length.
        len: usize,
        /// Who asks.
        by: String,
    },
    /// Remove a person with their crops and decision pictures.
    PeopleRemove {
        /// Their id.
        id: String,
        /// Who asks.
        by: String,
    },
    /// Change a person's display name: the new name (UTF-8, this many bytes) follows.
    PeopleRename {
        /// Their id.
        id: String,
        /// The payload's length.
        len: usize,
        /// Who asks.
        by: String,
    },
    /// Replace a person's access policy: a JSON payload of this many bytes follows
    /// ([`crate::people::policy::PolicyRequest`]).
    PeoplePolicy {
        /// Their id.
        id: String,
        /// The payload's length.
        len: usize,
        /// Who asks.
        by: String,
    },
    /// Set or clear a person's card credential (checked as the CLI checks it, when parsed).
    PeopleCredential {
        /// Their id.
        id: String,
        /// The card; `None`: cleared.
        credential: Option<crate::people::credential::Credential>,
        /// Who asks.
        by: String,
    },
    /// Made by the server, never parsed: a gallery change done, to reload and audit.
    PeopleChanged {
        /// What changed.
        change: people::PeopleChange,
        /// Who asked.
        by: String,
    },
}

impl Command {
    /// Whether a peer of `role` may ask this.
    pub fn allowed(&self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Reader => matches!(
                self,
                Self::Status
                    | Self::Events
                    | Self::Help
                    | Self::Operator(_)
                    | Self::SiteCommand(_)
                    | Self::SiteGallery(_)
                    | Self::SiteRefused { .. }
                    | Self::SitePicture(_)
            ),
        }
    }
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Root or the door's own user: everything.
    Admin,
    /// Anyone else allowed to connect (the site link, the console): status, events and signed
    /// site messages, which the door checks itself.
    Reader,
}

impl Role {
    /// The role of a peer with `uid`, for a door running as `own_uid`.
    pub fn of(uid: u32, own_uid: u32) -> Self {
        if uid == 0 || uid == own_uid {
            Self::Admin
        } else {
            Self::Reader
        }
    }
}

/// What `help` answers.
pub const HELP: &str = "commands: status | events | unlock by NAME | lockdown on|off by NAME | reload by NAME | site reset by NAME | site command ENVELOPE | site gallery LEN | site refused command|gallery WORD COUNT | site picture SEQ | operator KEY | view | snapshot | picture SEQ | pictures unknown | pictures dismiss SEQ[,SEQ..] by NAME | people add LEN by NAME | people remove ID by NAME | people rename ID LEN by NAME | people policy ID LEN by NAME | people credential ID wiegand26|wiegand34 FACILITY CARD|raw BITS VALUE|clear by NAME | help";

/// Parses one request line (without its newline). The error says what is wrong without
/// repeating more than a few escaped characters of the input.
pub fn parse(line: &[u8]) -> Result<Command, String> {
    if let Some(envelope) = line.strip_prefix(b"site command ") {
        if line.len() > MAX_SITE_LINE {
            return Err(format!("line too long (at most {MAX_SITE_LINE} bytes)"));
        }
        return Ok(Command::SiteCommand(envelope.to_vec()));
    }
    if line.starts_with(b"pictures dismiss ") {
        return parse_dismiss(line);
    }
    if line.len() > MAX_LINE {
        return Err(format!("line too long (at most {MAX_LINE} bytes)"));
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let by = |rest: &[&str]| -> Result<String, String> {
        match rest {
            ["by", name] => check_name(name),
            [] => Err("who asks? end the request with `by NAME`".into()),
            _ => Err("expected `by NAME` at the end".into()),
        }
    };
    match words.as_slice() {
        ["status"] => Ok(Command::Status),
        ["events"] => Ok(Command::Events),
        ["help"] => Ok(Command::Help),
        ["view"] => Ok(Command::View),
        ["snapshot"] => Ok(Command::Snapshot),
        ["operator", key] => Ok(Command::Operator(Offered(key.as_bytes().to_vec()))),
        // Never echoed: it may be a key with a space typed into it.
        ["operator", ..] => Err("operator takes the key, one word".into()),
        ["unlock", rest @ ..] => Ok(Command::Unlock { by: by(rest)? }),
        ["reload", rest @ ..] => Ok(Command::Reload { by: by(rest)? }),
        ["lockdown", "on", rest @ ..] => Ok(Command::Lockdown {
            on: true,
            by: by(rest)?,
        }),
        ["lockdown", "off", rest @ ..] => Ok(Command::Lockdown {
            on: false,
            by: by(rest)?,
        }),
        ["lockdown", ..] => Err("lockdown takes `on` or `off`".into()),
        ["site", "reset", rest @ ..] => Ok(Command::SiteReset { by: by(rest)? }),
        ["site", "gallery", len] => len
            .parse()
            .map(Command::SiteGallery)
            .map_err(|_| "site gallery takes its length in bytes".into()),
        ["site", "refused", kind @ ("command" | "gallery"), word, count] => {
            let why = Refusal::parse(word)
                .ok_or_else(|| format!("unknown refusal {}", shown(word)))?;
            let count = count
                .parse()
                .map_err(|_| "site refused takes a count".to_owned())?;
            Ok(Command::SiteRefused {
                gallery: *kind == "gallery",
                why,
                count,
            })
        }
        ["site", "picture", seq] => parse_seq(seq).map(Command::SitePicture),
        ["picture", seq] => parse_seq(seq).map(Command::Picture),
        ["picture", ..] => Err("picture takes one SEQ".into()),
        ["pictures", "unknown"] => Ok(Command::PicturesUnknown),
        ["pictures", ..] => Err("pictures takes `unknown` or `dismiss SEQ[,SEQ..] by NAME`".into()),
        ["people", "add", len, rest @ ..] => Ok(Command::PeopleAdd {
            len: parse_len(len)?,
            by: by(rest)?,
        }),
        ["people", "remove", id, rest @ ..] => Ok(Command::PeopleRemove {
            id: parse_id(id)?,
            by: by(rest)?,
        }),
        ["people", "rename", id, len, rest @ ..] => Ok(Command::PeopleRename {
            id: parse_id(id)?,
            len: parse_len(len)?,
            by: by(rest)?,
        }),
        ["people", "policy", id, len, rest @ ..] => Ok(Command::PeoplePolicy {
            id: parse_id(id)?,
            len: parse_len(len)?,
            by: by(rest)?,
        }),
        ["people", "credential", id, "clear", rest @ ..] => Ok(Command::PeopleCredential {
            id: parse_id(id)?,
            credential: None,
            by: by(rest)?,
        }),
        ["people", "credential", id, format, a, b, rest @ ..] => Ok(Command::PeopleCredential {
            id: parse_id(id)?,
            credential: Some(parse_credential(format, a, b)?),
            by: by(rest)?,
        }),
        ["people", "credential", ..] => Err("people credential takes `ID wiegand26|wiegand34 FACILITY CARD by NAME`, `ID raw BITS VALUE by NAME` or `ID clear by NAME`".into()),
        ["people", ..] => Err("people takes `add LEN by NAME`, `remove ID by NAME`, `rename ID LEN by NAME`, `policy ID LEN by NAME` or `credential ID ... by NAME`".into()),
        ["site", ..] => Err("site takes `reset by NAME`, `command ENVELOPE`, `gallery LEN`, `refused command|gallery WORD COUNT` or `picture SEQ`".into()),
        [] => Err("empty request; `help` lists the commands".into()),
        [word, ..] => Err(format!(
            "unknown command {}; `help` lists the commands",
            shown(word)
        )),
    }
}

/// The longest `pictures dismiss` line: [`people::MAX_DISMISS`] SEQs of up to 20 digits.
pub const MAX_DISMISS_LINE: usize = 32 + people::MAX_DISMISS * 21 + 80;
const _: () = assert!(MAX_DISMISS_LINE <= MAX_SITE_LINE);

/// A SEQ: a u64 in decimal digits, nothing else (no path from a client reaches a file name).
fn parse_seq(s: &str) -> Result<u64, String> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("SEQ must be a number, not {}", shown(s)));
    }
    s.parse()
        .map_err(|_| format!("SEQ must be a number, not {}", shown(s)))
}

/// `FORMAT A B` of `people credential`: numbers in decimal digits only, the ranges checked by
/// the library's one check ([`crate::people::credential::Credential::from_parts`]).
fn parse_credential(
    format: &str,
    a: &str,
    b: &str,
) -> Result<crate::people::credential::Credential, String> {
    use crate::people::credential::{Credential, Format};
    let f = Format::parse(format).ok_or_else(|| {
        format!(
            "unknown card format {} (wiegand26, wiegand34, raw)",
            shown(format)
        )
    })?;
    let number = |s: &str| -> Result<u64, String> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected a number, not {}", shown(s)));
        }
        s.parse()
            .map_err(|_| format!("expected a number, not {}", shown(s)))
    };
    let (a, b) = (number(a)?, number(b)?);
    let c = match f {
        Format::Raw => {
            let bits = u8::try_from(a).map_err(|_| "bits must be 1 to 63".to_owned())?;
            Credential::from_parts(f, None, b, Some(bits))
        }
        _ => Credential::from_parts(f, Some(a), b, None),
    };
    c.map_err(|e| e.to_string())
}

fn parse_len(s: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("LEN must be a number of bytes, not {}", shown(s)))
}

fn parse_id(s: &str) -> Result<String, String> {
    crate::people::gallery::validate_id(s)
        .map(|()| s.to_owned())
        .map_err(|_| format!("bad id {}", shown(s)))
}

/// `pictures dismiss SEQ[,SEQ..] by NAME`, up to [`MAX_DISMISS_LINE`] bytes.
fn parse_dismiss(line: &[u8]) -> Result<Command, String> {
    if line.len() > MAX_DISMISS_LINE {
        return Err(format!("line too long (at most {MAX_DISMISS_LINE} bytes)"));
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let ["pictures", "dismiss", list, "by", name] = words.as_slice() else {
        return Err("expected `pictures dismiss SEQ[,SEQ..] by NAME`".into());
    };
    let seqs = list
        .split(',')
        .map(parse_seq)
        .collect::<Result<Vec<u64>, String>>()?;
    if seqs.len() > people::MAX_DISMISS {
        return Err(format!("at most {} SEQs", people::MAX_DISMISS));
    }
    Ok(Command::PicturesDismiss {
        seqs,
        by: check_name(name)?,
    })
}

/// At most 24 characters of `s`, escaped: safe to put in an answer or a log line.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(24).collect();
    format!("\"{}\"", cut.escape_default())
}

/// Whether `c` may stand in a NAME (who asks): nothing that could split, quote or colour a log
/// line. Clients that build a NAME from elsewhere (a login name) keep only these.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-@".contains(c)
}

/// Whether `name` may be recorded as who asks: 1 to 64 [`is_name_char`]s.
pub fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(is_name_char)
}

fn check_name(name: &str) -> Result<String, String> {
    if is_name(name) {
        Ok(name.to_owned())
    } else {
        Err("NAME must be 1 to 64 of A-Z a-z 0-9 . _ - @".into())
    }
}

/// The connecting process, as the kernel reports it (`SO_PEERCRED`). Inside the unit's user
/// namespace (`PrivateUsers=yes`) users other than root and the daemon's show as 65534.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Process id.
    pub pid: i32,
    /// The connection sent the operator key.
    pub operator: bool,
}

impl Peer {
    fn of(stream: &UnixStream) -> Option<Self> {
        let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
        Some(Self {
            uid: cred.uid.as_raw(),
            pid: cred.pid.as_raw_nonzero().get(),
            operator: false,
        })
    }

    /// "control API, uid U, pid P" (or "control API, operator key, uid U, pid P"): the `via`
    /// of the audit line.
    pub fn describe(&self) -> String {
        let key = if self.operator { "operator key, " } else { "" };
        format!("control API, {key}uid {}, pid {}", self.uid, self.pid)
    }
}

/// A request for the door's loop, with where its answer goes.
#[derive(Debug)]
pub struct ApiRequest {
    /// What is asked.
    pub command: Command,
    /// Who connected.
    pub peer: Peer,
    /// The answer.
    pub reply: Sender<Answer>,
}

/// The loop's answer.
#[derive(Debug)]
pub enum Answer {
    /// Done; the text follows `OK `.
    Ok(String),
    /// Refused or failed; the text follows `ERR `.
    Err(String),
    /// `events`: the audit lines to forward, until the client goes or the door stops.
    Events(Receiver<String>),
    /// `view`: the viewer's mailbox, which the loop fills while the client stays.
    View(Arc<ViewerSlot>),
    /// `snapshot`: the newest camera frame, to encode on the client's thread.
    Snapshot(Picture),
    /// `site picture SEQ`: judged shareable; the client's thread reads it (an unknown face's
    /// file only).
    SitePicture(u64),
}

/// The bound socket, not yet served.
#[derive(Debug)]
pub struct ControlApi {
    listener: UnixListener,
    path: PathBuf,
    site: Option<(SiteTrust, Startup)>,
    operator: Option<OperatorKey>,
    gallery: Option<people::GalleryAccess>,
}

/// What a client thread shares: where requests go, the site judge, the door's own uid, the
/// operator key.
struct Shared {
    tx: Sender<ApiRequest>,
    site: Option<Arc<Mutex<SiteTrust>>>,
    own_uid: u32,
    operator: Option<OperatorKey>,
    /// The gallery changes and decision pictures ([`people`]).
    gallery: Option<people::GalleryAccess>,
}

impl ControlApi {
    /// Binds `path` (a stale socket left by a killed daemon is replaced; any other file there
    /// is an error) and makes it 0660: the daemon's user and group.
    pub fn bind(path: &Path) -> io::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            site: None,
            operator: None,
            gallery: None,
        })
    }

    /// Takes the operator key ([`ControlConfig::operator_key`]): a connection that sends it is
    /// an admin whoever it is.
    pub fn with_operator_key(mut self, key: Option<OperatorKey>) -> Self {
        self.operator = key;
        self
    }

    /// Serves the decision pictures and gallery changes ([`people`]) with `access`.
    pub fn with_gallery(mut self, access: people::GalleryAccess) -> Self {
        self.gallery = Some(access);
        self
    }

    /// Takes signed site messages, judged by `trust` (see [`crate::site::trust`]). What it
    /// found at start (a lockdown in force, an unreadable state) holds at once, through
    /// `control`, before the door's first frame; the loop records it at its first turn.
    pub fn with_site(mut self, trust: SiteTrust, startup: Startup, control: &Control) -> Self {
        if startup != Startup::Normal {
            control.set_lockdown(true);
        }
        self.site = Some((trust, startup));
        self
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections on a thread of their own (one more thread per connection) until
    /// `stop`; the requests come out of the returned receiver, for the door's loop.
    pub fn serve(mut self, stop: Arc<AtomicBool>) -> (Server, Receiver<ApiRequest>) {
        let (tx, rx) = mpsc::channel();
        let own_uid = rustix::process::geteuid().as_raw();
        let site = self.site.take().map(|(trust, startup)| {
            if startup != Startup::Normal {
                let (reply, _) = mpsc::channel();
                let _ = tx.send(ApiRequest {
                    command: Command::SiteStartup(startup),
                    peer: Peer {
                        uid: own_uid,
                        pid: std::process::id() as i32,
                        operator: false,
                    },
                    reply,
                });
            }
            Arc::new(Mutex::new(trust))
        });
        let operator = self.operator.take();
        let gallery = self.gallery.take();
        let shared = Arc::new(Shared {
            tx,
            site,
            own_uid,
            operator,
            gallery,
        });
        let thread = std::thread::Builder::new()
            .name("control-api".into())
            .spawn(move || self.accept_loop(&stop, &shared))
            .expect("spawning the control API thread");
        (
            Server {
                thread: Some(thread),
            },
            rx,
        )
    }

    fn accept_loop(self, stop: &Arc<AtomicBool>, shared: &Arc<Shared>) {
        let clients = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::SeqCst) {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if clients.load(Ordering::SeqCst) >= MAX_CLIENTS {
                        let _ = stream.write_all(b"ERR busy: too many connections\n");
                        continue;
                    }
                    clients.fetch_add(1, Ordering::SeqCst);
                    let (stop, shared, clients) =
                        (Arc::clone(stop), Arc::clone(shared), Arc::clone(&clients));
                    let spawned = std::thread::Builder::new()
                        .name("control-client".into())
                        .spawn(move || {
                            if let Err(e) = serve_client(stream, &stop, &shared) {
                                tracing::debug!("control API client: {e}");
                            }
                            clients.fetch_sub(1, Ordering::SeqCst);
                        });
                    if let Err(e) = spawned {
                        tracing::warn!("control API: no thread for a client: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(STEP),
                Err(e) => {
                    tracing::warn!("control API: accept failed: {e}");
                    std::thread::sleep(STEP);
                }
            }
        }
    }
}

impl Drop for ControlApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The running server; joined when dropped (after its stop flag was set).
pub struct Server {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one line of at most [`MAX_SITE_LINE`] bytes into `line` ([`parse`] holds every
/// request but `site command` and `pictures dismiss` to [`MAX_LINE`]). `Ok(false)`: the client went, or
/// the server stops, or the client was idle too long.
fn read_line(stream: &mut UnixStream, line: &mut Vec<u8>, stop: &AtomicBool) -> io::Result<bool> {
    line.clear();
    let since = Instant::now();
    let mut byte = [0u8; 1];
    loop {
        if stop.load(Ordering::SeqCst) || since.elapsed() > IDLE {
            return Ok(false);
        }
        match stream.read(&mut byte) {
            Ok(0) => return Ok(false),
            Ok(_) if byte[0] == b'\n' => return Ok(true),
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_SITE_LINE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line too long (at most {MAX_SITE_LINE} bytes)"),
                    ));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads exactly `len` bytes (a signed gallery after its line), within [`PAYLOAD_TIME`].
fn read_payload(stream: &mut UnixStream, len: usize, stop: &AtomicBool) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    let since = Instant::now();
    while got < len {
        if stop.load(Ordering::SeqCst) || since.elapsed() > PAYLOAD_TIME {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the payload did not come in time",
            ));
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// A signed site message judged by the door (on this client's thread: the loop never waits
/// for a signature check or a gallery save), as the request the loop records and acts on.
fn judge(shared: &Shared, command: Command, payload: Option<Vec<u8>>) -> Command {
    let Some(site) = &shared.site else {
        let result = Err(Refused {
            why: Refusal::NotTaken,
            detail: "this door has no mqtt.site_key".into(),
        });
        return Command::Checked {
            gallery: payload.is_some(),
            result,
        };
    };
    let now = crate::site::now_ms();
    let mut trust = site.lock().unwrap_or_else(|p| p.into_inner());
    match (command, payload) {
        (Command::SiteCommand(bytes), _) => Command::Checked {
            gallery: false,
            result: trust.command(&bytes, now),
        },
        (Command::SiteGallery(_), Some(bytes)) => Command::Checked {
            gallery: true,
            result: trust.gallery(&bytes, now),
        },
        (Command::SiteReset { by }, _) => match trust.reset_versions(now) {
            Ok(before) => Command::SiteWasReset { by, before },
            Err(r) => Command::Checked {
                gallery: false,
                result: Err(r),
            },
        },
        (other, _) => other,
    }
}

fn serve_client(mut stream: UnixStream, stop: &AtomicBool, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STEP))?;
    stream.set_write_timeout(Some(ANSWER))?;
    let Some(mut peer) = Peer::of(&stream) else {
        stream.write_all(b"ERR who are you? (no peer credentials)\n")?;
        return Ok(());
    };
    let mut wrong_keys = 0;
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut window = (Instant::now(), 0u32);
    loop {
        match read_line(&mut stream, &mut line, stop) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                stream.write_all(format!("ERR {e}\n").as_bytes())?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        // Rate: at most MAX_RATE requests a second; faster ones wait for the next second.
        if window.0.elapsed() >= Duration::from_secs(1) {
            window = (Instant::now(), 0);
        }
        window.1 += 1;
        if window.1 > MAX_RATE {
            std::thread::sleep(Duration::from_secs(1).saturating_sub(window.0.elapsed()));
            window = (Instant::now(), 1);
        }
        let trimmed = line.strip_suffix(b"\r").unwrap_or(&line);
        let command = match parse(trimmed) {
            Ok(c) => c,
            Err(e) => {
                stream.write_all(format!("ERR {e}\n").as_bytes())?;
                continue;
            }
        };
        let role = if peer.operator {
            Role::Admin
        } else {
            Role::of(peer.uid, shared.own_uid)
        };
        if !command.allowed(role) {
            stream.write_all(
                b"ERR not allowed: only root, the door's own user or a connection with the operator key may ask that (others: status, events, signed site messages)\n",
            )?;
            // Its payload, left unread, would be read as request lines: the connection ends.
            if people::has_payload(&command) {
                return Ok(());
            }
            continue;
        }
        if let Command::Operator(offered) = &command {
            if shared
                .operator
                .as_ref()
                .is_some_and(|k| k.matches(&offered.0))
            {
                peer.operator = true;
                stream.write_all(b"OK operator\n")?;
                continue;
            }
            wrong_keys += 1;
            // The loop records it within its budget; this client does not wait for that.
            let (reply, _) = mpsc::channel();
            let _ = shared.tx.send(ApiRequest {
                command: Command::OperatorRefused { n: wrong_keys },
                peer,
                reply,
            });
            stream.write_all(b"ERR not allowed: wrong operator key\n")?;
            if wrong_keys >= operator::WRONG_KEYS {
                return Ok(());
            }
            continue;
        }
        let command = match command {
            Command::SiteGallery(len) => {
                let max = shared.site.as_ref().map(|s| {
                    s.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .max_gallery_bytes()
                });
                if max.is_none_or(|m| len > m) {
                    // The bytes are not read: the connection cannot go on.
                    let why = match max {
                        None => "refused: not_taken: this door has no mqtt.site_key".to_owned(),
                        Some(m) => format!("refused: too_large: {len} bytes, at most {m}"),
                    };
                    stream.write_all(format!("ERR {why}\n").as_bytes())?;
                    return Ok(());
                }
                let bytes = read_payload(&mut stream, len, stop)?;
                judge(shared, Command::SiteGallery(len), Some(bytes))
            }
            c @ (Command::SiteCommand(_) | Command::SiteReset { .. }) => judge(shared, c, None),
            c @ (Command::Picture(_)
            | Command::PicturesUnknown
            | Command::PicturesDismiss { .. }
            | Command::PeopleAdd { .. }
            | Command::PeopleRemove { .. }
            | Command::PeopleRename { .. }
            | Command::PeoplePolicy { .. }
            | Command::PeopleCredential { .. }) => {
                match people::serve(shared.gallery.as_ref(), c, &mut stream, stop)? {
                    people::Served::Loop(c) => c,
                    people::Served::Answered => continue,
                    people::Served::Close => return Ok(()),
                }
            }
            c => c,
        };
        let tx = &shared.tx;
        let is_status = command == Command::Status;
        let (reply, answer) = mpsc::channel();
        let request = ApiRequest {
            command,
            peer,
            reply,
        };
        if tx.send(request).is_err() {
            stream.write_all(b"ERR the door is stopping\n")?;
            return Ok(());
        }
        match answer.recv_timeout(ANSWER) {
            Ok(Answer::Ok(text)) if is_status => {
                let text = with_site_state(text, shared);
                stream.write_all(format!("OK {text}\n").as_bytes())?
            }
            Ok(Answer::Ok(text)) => stream.write_all(format!("OK {text}\n").as_bytes())?,
            Ok(Answer::Err(text)) => stream.write_all(format!("ERR {text}\n").as_bytes())?,
            Ok(Answer::Events(events)) => {
                stream.write_all(b"OK events\n")?;
                return forward(&mut stream, &events, stop);
            }
            Ok(Answer::View(slot)) => {
                stream.write_all(b"OK view\n")?;
                return stream_view(&mut stream, &slot, stop);
            }
            Ok(Answer::Snapshot(picture)) => match live::jpeg(&picture.0, live::SNAPSHOT_QUALITY) {
                Ok(bytes) => {
                    stream.write_all(format!("OK snapshot {}\n", bytes.len()).as_bytes())?;
                    stream.write_all(&bytes)?;
                }
                Err(e) => {
                    tracing::warn!("snapshot: cannot encode the frame: {e}");
                    stream.write_all(b"ERR cannot encode the frame\n")?;
                }
            },
            Ok(Answer::SitePicture(seq)) => serve_site_picture(&mut stream, shared, peer, seq)?,
            Err(_) => stream.write_all(b"ERR the door did not answer in time\n")?,
        }
    }
}

/// Sends the picture of line `seq`, judged shareable by the loop, read as an unknown face's
/// only: a named person's file is never sent to the site link whatever the loop said.
fn serve_site_picture(
    stream: &mut UnixStream,
    shared: &Shared,
    peer: Peer,
    seq: u64,
) -> io::Result<()> {
    let read = shared.gallery.as_ref().map(|g| g.faces().read_unknown(seq));
    match read {
        Some(Ok(Some(png))) => {
            stream.write_all(format!("OK picture {}\n", png.len()).as_bytes())?;
            stream.write_all(&png)?;
            // A picture that left the door is an audit line (at most as many as the loop let
            // through, `site_picture::PER_MINUTE`; this client does not wait for it).
            let (reply, _) = mpsc::channel();
            let _ = shared.tx.send(ApiRequest {
                command: Command::SitePictureSent {
                    seq,
                    bytes: png.len(),
                },
                peer,
                reply,
            });
            Ok(())
        }
        // Not yet written by the picture writer, or swept, dismissed.
        Some(Ok(None)) | None => stream.write_all(format!("ERR no picture for {seq}\n").as_bytes()),
        Some(Err(e)) => {
            tracing::error!("decision pictures: {e}");
            stream.write_all(b"ERR the pictures cannot be read\n")
        }
    }
}

/// The status with the site versions the door took (the site link publishes the lockdown's).
fn with_site_state(status: String, shared: &Shared) -> String {
    let Some(site) = &shared.site else {
        return status;
    };
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&status) else {
        return status;
    };
    let state = site
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .state()
        .clone();
    if let (Some(o), Ok(v)) = (json.as_object_mut(), serde_json::to_value(state)) {
        o.insert("site".into(), v);
    }
    json.to_string()
}

/// Sends a viewer the frames its mailbox gets (encoded on a viewer's thread, once for all) until it
/// goes, the door stops or the server stops. A slow viewer only delays itself: the loop
/// replaces a frame not yet taken.
fn stream_view(stream: &mut UnixStream, slot: &ViewerSlot, stop: &AtomicBool) -> io::Result<()> {
    // A viewer sends nothing more: reading only notices that it went.
    stream.set_read_timeout(Some(Duration::from_millis(1)))?;
    let mut ignored = [0u8; 256];
    while !stop.load(Ordering::SeqCst) && !slot.shots.is_closed() {
        if let Some(shot) = slot.shots.take(STEP) {
            if let Some((meta, bytes)) = live::shared_record(&shot, &slot.encoded) {
                let json = serde_json::to_string(meta).map_err(io::Error::other)?;
                stream.write_all(format!("frame {json}\n").as_bytes())?;
                stream.write_all(bytes)?;
            }
        }
        match stream.read(&mut ignored) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Forwards audit lines to an `events` client until it goes or the server stops.
fn forward(
    stream: &mut UnixStream,
    events: &Receiver<String>,
    stop: &AtomicBool,
) -> io::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        match events.recv_timeout(STEP) {
            Ok(line) => {
                stream.write_all(line.as_bytes())?;
                stream.write_all(b"\n")?;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
    Ok(())
}

/// The client side (`facegate door`): sends one request line, returns the answer line (without
/// `OK `/`ERR `) as `Ok` or `Err`. Connection errors are `io::Error`s.
pub fn ask(socket: &Path, request: &str) -> io::Result<Result<String, String>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(ANSWER * 2))?;
    stream.write_all(request.as_bytes())?;
    stream.write_all(b"\n")?;
    let line = read_answer(&mut io::BufReader::new(stream))?;
    Ok(split_answer(&line))
}

/// `site gallery LEN` and its bytes: the answer as [`ask`]'s.
pub fn ask_with_payload(
    socket: &Path,
    request: &str,
    payload: &[u8],
) -> io::Result<Result<String, String>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(ANSWER + PAYLOAD_TIME))?;
    stream.set_write_timeout(Some(PAYLOAD_TIME))?;
    stream.write_all(request.as_bytes())?;
    stream.write_all(b"\n")?;
    // A door that refuses the length answers and closes without reading: its answer counts.
    let sent = stream.write_all(payload);
    let line = read_answer(&mut io::BufReader::new(stream))?;
    if line.is_empty() {
        sent?;
    }
    Ok(split_answer(&line))
}

/// `events`: calls `each` with every audit line until it returns `false` or the door goes.
pub fn follow_events(socket: &Path, mut each: impl FnMut(&str) -> bool) -> io::Result<()> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(b"events\n")?;
    let mut reader = io::BufReader::new(stream);
    let first = read_answer(&mut reader)?;
    if let Err(e) = split_answer(&first) {
        return Err(io::Error::other(e));
    }
    loop {
        let line = read_answer(&mut reader)?;
        if line.is_empty() || !each(&line) {
            return Ok(());
        }
    }
}

/// One answer line, at most 1 MiB (a status with its recent decisions is a few KB).
fn read_answer(reader: &mut impl io::BufRead) -> io::Result<String> {
    let mut out = Vec::new();
    reader.take(1 << 20).read_until(b'\n', &mut out)?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn split_answer(line: &str) -> Result<String, String> {
    if let Some(rest) = line.strip_prefix("OK") {
        Ok(rest.trim_start().to_owned())
    } else if let Some(rest) = line.strip_prefix("ERR") {
        Err(rest.trim_start().to_owned())
    } else if line.is_empty() {
        Err("the door closed the connection".to_owned())
    } else {
        Err(format!("not an answer: {}", shown(line)))
    }
}

pub mod people;

#[cfg(test)]
mod tests;
