//! How a command prints its answer: text for people, or JSON for programs (`--json`).

/// The form of a command's answer on stdout, made once from its `--json` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Lines for people.
    Text,
    /// JSON (what each command prints under `--json`).
    Json,
}

impl Output {
    /// `Json` if `--json` was given, else `Text`.
    pub fn json_if(json: bool) -> Self {
        if json {
            Self::Json
        } else {
            Self::Text
        }
    }
}
