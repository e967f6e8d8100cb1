//! What a settings check finds wrong: one [`Problem`] (the key and what is wrong with it), the
//! type every part's `check` returns; `config` adds the file's path and reports it.

/// A setting that is out of range, or clashes with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Problem {
    /// The key, as `section.key` (or the keys that clash, `a/b`).
    pub key: &'static str,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl Problem {
    /// `key` is wrong: `message`.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}
