//! The web console's code (`facegate-console`, feature `console`); the lock's process never
//! links it. An HTTPS server, its own process and unit, that drives nothing itself: it reaches
//! the door through the control API with the operator key ([`door`]), reads the gallery and the
//! audit log read-only with the library's code, and has its own accounts ([`users`]).
//!
//! - [`users`]: the accounts file (argon2id hashes, 0600);
//! - [`auth`]: sessions, CSRF tokens, the login rate limit;
//! - [`door`]: the door's socket and key for the library's control-API client
//!   ([`crate::door::control_api::client::DoorClient`]), one short connection per action;
//! - [`tls`]: the certificate (a self-signed one made at first start) and its fingerprint;
//! - [`faces`]: enrolment from the door camera or photos, and grouping unknown faces;
//! - [`server`]: the routes, the security headers, the roles; [`pages`]: the HTML.

pub mod auth;
pub mod door;
pub mod faces;
pub mod forms;
pub mod pages;
pub mod server;
pub mod tls;
pub mod users;

use std::path::PathBuf;

/// What can go wrong in the console's own code.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The users file is not usable.
    #[error("users file: {0}")]
    UsersFile(String),
    /// Input refused (a name, a password).
    #[error("{0}")]
    BadInput(String),
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// Password hashing failed.
    #[error("password hash: {0}")]
    Hash(String),
    /// The TLS certificate or key is not usable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The operator key file is not usable.
    #[error("operator key: {0}")]
    OperatorKey(String),
}

/// At most 300 characters of `s` with control characters escaped: safe for a log line or a
/// message shown back (HTML escaping is the templates' job).
pub fn clean(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(300) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the operator key file: its trimmed contents, at least 32 characters.
pub fn read_operator_key(path: &std::path::Path) -> Result<String, ConsoleError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|source| ConsoleError::Io {
            path: path.to_owned(),
            source,
        })?;
    let key = text.trim();
    if key.len() < 32 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConsoleError::OperatorKey(format!(
            "{}: at least 32 characters without spaces are needed",
            path.display()
        )));
    }
    Ok(key.to_owned())
}
