//! `facegate pin set ID [--duress]` and `facegate pin clear ID [--duress]`: a person's PIN for
//! the door's second factor (`[access] factors = "face_and_pin"`), read from standard input and
//! stored as an argon2id hash (`facegate::people::pin`), never in clear. A duress PIN opens the
//! door like the PIN and raises a silent `duress` event.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use facegate::people::gallery::{GalleryError, Locked};
use facegate::people::pin;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

/// `facegate pin` arguments.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PinAction,
}

/// Set or clear.
#[derive(Debug, Subcommand)]
pub enum PinAction {
    /// Set the person's PIN (4 to 12 digits, read from standard input: one line).
    Set {
        /// The person's id.
        id: String,
        /// The duress PIN instead: it opens the door and raises a silent alarm.
        #[arg(long)]
        duress: bool,
    },
    /// Remove the person's PIN (or duress PIN).
    Clear {
        /// The person's id.
        id: String,
        /// The duress PIN instead.
        #[arg(long)]
        duress: bool,
    },
}

/// The PIN on the first line of `input` (its line end removed; nothing else trimmed).
pub fn read_pin(input: &mut dyn BufRead) -> Result<String> {
    let mut line = String::new();
    // Bounded: a PIN is 12 digits; a longer line is refused below, not kept.
    std::io::Read::take(input, 64)
        .read_line(&mut line)
        .context("reading the PIN from standard input")?;
    let pin = line.trim_end_matches(['\n', '\r']).to_owned();
    pin::check(&pin)?;
    Ok(pin)
}

/// Runs `facegate pin`, reading a PIN from `input` for `set`.
pub fn run(
    gallery: &Path,
    fingerprint: &str,
    a: &PinArgs,
    input: &mut dyn BufRead,
) -> Result<ExitCode> {
    let (id, duress, new) = match &a.action {
        PinAction::Set { id, duress } => (id, *duress, Some(read_pin(input)?)),
        PinAction::Clear { id, duress } => (id, *duress, None),
    };
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(fingerprint)?;
    let p = g
        .get_mut(id)
        .ok_or_else(|| GalleryError::UnknownId(id.clone()))?;
    let what = if duress { "duress PIN" } else { "PIN" };
    let hash = match &new {
        Some(pin) => {
            let other = if duress { &p.pin_hash } else { &p.duress_hash };
            if other.as_deref().is_some_and(|h| pin::verify(pin, h)) {
                bail!("the PIN and the duress PIN must differ");
            }
            Some(pin::hash(pin)?)
        }
        None => None,
    };
    if duress {
        p.duress_hash = hash;
    } else {
        p.pin_hash = hash;
    }
    lock.save(&g)?;
    match new {
        Some(_) => println!("{id}: {what} set (stored as an argon2id hash)"),
        None => println!("{id}: {what} removed"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_one_line_of_4_to_12_digits() {
        assert_eq!(read_pin(&mut "1234\n".as_bytes()).unwrap(), "1234");
        assert_eq!(read_pin(&mut "123456\r\n".as_bytes()).unwrap(), "123456");
        for bad in ["12\n", "12345 \n", "abcd\n", "", "1234567890123\n"] {
            assert!(read_pin(&mut bad.as_bytes()).is_err(), "{bad:?}");
        }
        // Only the first line counts, and a long one is cut, not kept.
        assert!(read_pin(&mut "9".repeat(10_000).as_bytes()).is_err());
    }
}
