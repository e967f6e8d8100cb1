//! The operator key (`[control] operator_key`): a secret in a file that the door and the web
//! console can read and the site link cannot. A connection that sends `operator KEY` with it
//! becomes [`super::Role::Admin`] for the rest of the connection: inside the unit's user
//! namespace (`PrivateUsers=yes`) the console's uid shows as 65534 like everyone else's, so its
//! uid cannot tell it apart.

use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// Shortest key, in characters (after trimming the file's surrounding white space).
pub const MIN_KEY: usize = 32;
/// Longest key: it travels in one request line ([`super::MAX_LINE`]).
pub const MAX_KEY: usize = 200;
/// Wrong keys one connection may send; at the next the connection is closed.
pub const WRONG_KEYS: u32 = 3;

/// Why the key file cannot be used: a config error at start.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key is not usable (too short, too long, white space or control characters inside).
    #[error("{path}: {why}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong (the key itself is never shown).
        why: String,
    },
}

/// The operator key, held by the door's control API. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorKey(Vec<u8>);

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKey(..)")
    }
}

impl OperatorKey {
    /// The key in `text` (surrounding white space trimmed): [`MIN_KEY`] to [`MAX_KEY`] printable
    /// ASCII characters without spaces, so it fits one request line as one word.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = text.trim();
        if key.len() < MIN_KEY {
            return Err(format!(
                "the operator key is {} characters long; at least {MIN_KEY} are needed",
                key.len()
            ));
        }
        if key.len() > MAX_KEY {
            return Err(format!(
                "the operator key is longer than {MAX_KEY} characters"
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the operator key must be printable ASCII without spaces".into());
        }
        Ok(Self(key.as_bytes().to_vec()))
    }

    /// Reads the key file (at most a few hundred bytes are read).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_key_file(path)?;
        Self::parse(&text).map_err(|why| KeyError::Bad {
            path: path.to_owned(),
            why,
        })
    }

    /// Whether `offered` is the key, compared in constant time (its length is not secret).
    pub fn matches(&self, offered: &[u8]) -> bool {
        self.0.len() == offered.len() && bool::from(self.0.as_slice().ct_eq(offered))
    }

    /// The key, to send (clients: the console).
    pub fn expose(&self) -> &str {
        // Checked ASCII at parse.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The key file's text, read bounded ([`MAX_KEY`] and some white space).
fn read_key_file(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let read = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_KEY as u64 + 64)
        .read_to_string(&mut text)
        .map_err(read)?;
    Ok(text)
}

/// A secret as a request carries it (`operator KEY`): compared, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Offered(pub(crate) Vec<u8>);

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Offered(..)")
    }
}
