//! Checking the audit chain: [`verify_anchored`] walks a log's rotated files and then its active
//! file as one chain, and [`head`] gives the newest line's `seq` and `hash` to keep outside the
//! door, so that a later check against that head tells a cut or rewritten log from a whole one.

use super::{chain_hash, last_line, split_hash, AuditError, ZERO_HASH};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The newest chained line of a log: kept outside the door (published by the site link, or
/// printed by `facegate audit head`), it pins every line up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The line's `seq`.
    pub seq: u64,
    /// The line's `hash` (64 hex digits).
    pub hash: String,
}

impl Head {
    /// Reads a head as `facegate audit head` prints it: `SEQ:HASH` (what follows it on the line,
    /// the file, is ignored), or its `--json` object (fields other than `seq` and `hash` too).
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let text = text.trim();
        let head = if text.starts_with('{') {
            serde_json::from_str::<Head>(text).ok()
        } else {
            let word = text.split_whitespace().next().unwrap_or_default();
            word.split_once(':').and_then(|(seq, hash)| {
                Some(Head {
                    seq: seq.trim().parse().ok()?,
                    hash: hash.trim().to_owned(),
                })
            })
        };
        match head {
            Some(h) if h.hash.len() == 64 && h.hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Head {
                    hash: h.hash.to_ascii_lowercase(),
                    ..h
                })
            }
            // Only a short, escaped part of what was given: it may be anything.
            _ => Err(AuditError::Head(format!(
                "{:?} is not a head (SEQ:HASH, or the JSON of `facegate audit head --json`)",
                text.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// The head of a chained line, `None` for any other line.
    fn of_line(line: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let seq = v.get("seq")?.as_u64()?;
        let (_, hash) = split_hash(line)?;
        Some(Head {
            seq,
            hash: hash.to_owned(),
        })
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The head of the log at `path` and the file it is in: the last whole line of the active file,
/// or of the newest rotated file while the active one is empty or missing (just rotated).
/// `None`: no line, or the last one is not chained. Read only; a torn tail is not a line.
pub fn head_in(path: &Path) -> Result<Option<(Head, PathBuf)>, AuditError> {
    let mut files = crate::records::rotation::rotated(path);
    files.push(path.to_owned());
    for f in files.iter().rev() {
        let io = |source| AuditError::Io {
            path: f.clone(),
            source,
        };
        let mut file = match File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        if let Some(line) = last_line(&mut file).map_err(io)? {
            return Ok(Head::of_line(&line).map(|h| (h, f.clone())));
        }
    }
    Ok(None)
}

/// The head of the log at `path` (see [`head_in`]): what the site link publishes.
pub fn head(path: &Path) -> Result<Option<Head>, AuditError> {
    Ok(head_in(path)?.map(|(h, _)| h))
}

/// What became of an anchored head in [`verify_anchored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The line at the anchored `seq` has the anchored hash: every line up to it is as it was.
    Found,
    /// The log ends before the anchored `seq` (`last`: its last `seq`; `None`: no chained
    /// line): cut, or rebuilt.
    Missing {
        /// The last chained `seq` of the log.
        last: Option<u64>,
    },
    /// The line at the anchored `seq` has another hash: rewritten.
    Differs {
        /// Its hash.
        hash: String,
    },
    /// The anchored `seq` is before the first line present: the file that held it is gone.
    Gone {
        /// The first chained `seq` present.
        first: u64,
    },
    /// The chain broke before the anchored `seq`.
    NotReached,
}

/// The verdict of a check, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A line was edited, inserted or removed, or the anchored head is not in the log.
    Broken,
    /// Every line present checks out, but the log starts in the middle of its chain: nothing
    /// vouches for its first line.
    Unvouched,
    /// Every line checks out from the start of the chain (and up to the anchored head).
    Verified,
}

/// What [`verify_anchored`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    /// Lines whose hash chain checked out.
    pub chained: u64,
    /// Lines without `seq`/`hash` (written before the chain existed), not checked.
    pub unchained: u64,
    /// The first chained line's `seq` when it is not 1: the lines before it are missing (rotated
    /// files deleted, or lines removed), so its own hash cannot be recomputed and nothing vouches
    /// for it; every later line is checked against it.
    pub continues_at: Option<u64>,
    /// The first broken line: its number counted across the files (from 1) and what is wrong.
    pub broken: Option<(u64, String)>,
    /// The file of the broken line and its number in that file.
    pub broken_in: Option<(PathBuf, u64)>,
    /// The last chained line checked.
    pub head: Option<Head>,
    /// With an anchored head: what became of it.
    pub anchor: Option<Anchor>,
}

impl Verified {
    /// The verdict.
    pub fn status(&self) -> Status {
        match (&self.broken, &self.anchor) {
            (Some(_), _)
            | (None, Some(Anchor::Missing { .. } | Anchor::Differs { .. } | Anchor::NotReached)) => {
                Status::Broken
            }
            _ if self.continues_at.is_some() => Status::Unvouched,
            (None, Some(Anchor::Gone { .. })) => Status::Unvouched,
            _ => Status::Verified,
        }
    }
}

/// Checks the hash chain of the one file at `path`, stopping at the first broken line.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    verify_anchored(&[path.to_owned()], None)
}

/// Checks the hash chain across `files` read in order as one log (the rotated files of a log
/// then its active file: [`crate::records::rotation::all_files`]); line numbers count across them.
pub fn verify_files(files: &[PathBuf]) -> Result<Verified, AuditError> {
    verify_anchored(files, None)
}

/// [`verify_files`], and with `anchor` (a head kept outside the door) also whether the log still
/// holds that line with that hash: a log cut after it, or rewritten, does not.
pub fn verify_anchored(files: &[PathBuf], anchor: Option<&Head>) -> Result<Verified, AuditError> {
    let mut out = Verified::default();
    let mut prev: Option<Head> = None;
    let mut first: Option<u64> = None;
    let mut n = 0u64;
    'files: for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
        if bytes.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        // Lines end with '\n' alone, as the writer and `AuditLog`'s reader see them.
        let text = text.strip_suffix('\n').unwrap_or(&text);
        for (k, line) in text.split('\n').enumerate() {
            n += 1;
            let why = match check(line, prev.as_ref()) {
                Ok(None) => {
                    out.unchained += 1;
                    continue;
                }
                Ok(Some(h)) => {
                    if first.is_none() {
                        first = Some(h.seq);
                        out.continues_at = (h.seq != 1).then_some(h.seq);
                    }
                    if let Some(a) = anchor.filter(|a| a.seq == h.seq && out.anchor.is_none()) {
                        out.anchor = Some(if a.hash.eq_ignore_ascii_case(&h.hash) {
                            Anchor::Found
                        } else {
                            Anchor::Differs {
                                hash: h.hash.clone(),
                            }
                        });
                    }
                    out.chained += 1;
                    prev = Some(h);
                    continue;
                }
                Err(why) if k == 0 && i > 0 && prev.is_some() => {
                    format!("does not continue {}: {why}", files[i - 1].display())
                }
                Err(why) => why,
            };
            out.broken = Some((n, why));
            out.broken_in = Some((path.to_owned(), k as u64 + 1));
            break 'files;
        }
    }
    if let (Some(a), None) = (anchor, &out.anchor) {
        out.anchor = Some(if out.broken.is_some() {
            Anchor::NotReached
        } else if let Some(f) = first.filter(|f| a.seq < *f) {
            Anchor::Gone { first: f }
        } else {
            Anchor::Missing {
                last: prev.as_ref().map(|h| h.seq),
            }
        });
    }
    out.head = prev;
    Ok(out)
}

/// One line after `prev` (the last chained line, if any): its head if it is chained and
/// follows, `None` for an unchained line before the chain, or what is wrong with it.
fn check(line: &str, prev: Option<&Head>) -> Result<Option<Head>, String> {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
        return Err(format!("not a JSON line ({e})"));
    }
    let (Some(head), Some((body, _))) = (Head::of_line(line), split_hash(line)) else {
        return match prev {
            Some(_) => Err("no seq/hash after chained lines: inserted or edited".into()),
            None => Ok(None),
        };
    };
    let seq = head.seq;
    match prev {
        // The start of the chain: its hash follows from zeros.
        None if seq == 1 && chain_hash(ZERO_HASH, &body) != head.hash => {
            Err("hash does not match: the line was edited".into())
        }
        // The start of what is left of a chain: nothing to check it against.
        None => Ok(Some(head)),
        Some(p) if seq != p.seq.wrapping_add(1) => Err(if seq > p.seq {
            format!(
                "seq {seq} follows seq {}: {} line(s) removed before it, or it was edited",
                p.seq,
                seq - p.seq - 1
            )
        } else {
            format!(
                "seq {seq} follows seq {}: lines repeated, reordered or the chain restarted",
                p.seq
            )
        }),
        Some(p) if chain_hash(&p.hash, &body) != head.hash => {
            Err("hash does not match: this line was edited, or the one before it replaced".into())
        }
        Some(_) => Ok(Some(head)),
    }
}
