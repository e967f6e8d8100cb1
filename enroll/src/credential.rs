//! `facegate credential`: sets or clears the card credential a person's face stands for when the
//! door runs as the reader of an access-control panel (`[output] mode = "wiegand"`).

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use facegate::people::credential::{self, Credential};
use facegate::people::gallery::Locked;
use std::path::Path;
use std::process::ExitCode;

/// The credential's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// 26-bit Wiegand (HID H10301): facility 0-255, card 0-65535.
    Wiegand26,
    /// 34-bit Wiegand: facility 0-65535, card 0-65535.
    Wiegand34,
    /// Raw card bits, for OSDP (not sendable over Wiegand): --bits N and --card VALUE.
    Raw,
}

/// `facegate credential` arguments.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// The person's id.
    pub id: String,
    /// Card number (for raw: the card's bits as a number).
    #[arg(long, required_unless_present = "clear")]
    pub card: Option<u64>,
    /// Facility (site) code, for the Wiegand formats.
    #[arg(long)]
    pub facility: Option<u64>,
    /// Card format.
    #[arg(long, value_enum, default_value_t = Format::Wiegand26)]
    pub format: Format,
    /// Number of bits, for --format raw.
    #[arg(long)]
    pub bits: Option<u8>,
    /// Remove the person's credential (they are then never sent to the panel).
    #[arg(long, conflicts_with_all = ["card", "facility", "bits"])]
    pub clear: bool,
}

/// The credential the arguments describe, refused with a clear message when out of range
/// (the library's one check, [`Credential::from_parts`], as the console's door request).
pub fn parse(a: &CredentialArgs) -> Result<Option<Credential>> {
    if a.clear {
        return Ok(None);
    }
    let Some(card) = a.card else {
        bail!("--card is needed (or --clear)");
    };
    let format = match a.format {
        Format::Wiegand26 => credential::Format::Wiegand26,
        Format::Wiegand34 => credential::Format::Wiegand34,
        Format::Raw => credential::Format::Raw,
    };
    Ok(Some(Credential::from_parts(
        format, a.facility, card, a.bits,
    )?))
}

/// Sets (or clears) the credential under the gallery's lock; refuses a card another person has.
pub fn run(gallery: &Path, fingerprint: &str, a: &CredentialArgs) -> Result<ExitCode> {
    let credential = parse(a)?;
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(fingerprint)?;
    g.set_credential(&a.id, credential)?;
    lock.save(&g)?;
    match credential {
        Some(c) => println!("{}: credential {c}", a.id),
        None => println!("{}: credential removed", a.id),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CredentialArgs,
    }

    fn p(args: &[&str]) -> Result<Option<Credential>> {
        let t = T::try_parse_from(std::iter::once("x").chain(args.iter().copied()))?;
        parse(&t.a)
    }

    #[test]
    fn arguments_give_the_credential_or_a_clear_refusal() {
        assert_eq!(
            p(&["ann", "--card", "4660", "--facility", "18"]).unwrap(),
            Some(Credential::Wiegand26 {
                facility: 18,
                card: 4660
            })
        );
        assert_eq!(
            p(&[
                "ann",
                "--format",
                "wiegand34",
                "--card",
                "1",
                "--facility",
                "300"
            ])
            .unwrap(),
            Some(Credential::Wiegand34 {
                facility: 300,
                card: 1
            })
        );
        assert_eq!(
            p(&[
                "ann",
                "--format",
                "raw",
                "--bits",
                "40",
                "--card",
                "1099511627775"
            ])
            .unwrap(),
            Some(Credential::Raw {
                bits: 40,
                value: (1 << 40) - 1
            })
        );
        assert_eq!(p(&["ann", "--clear"]).unwrap(), None);
        for (args, why) in [
            (
                &["ann", "--card", "1", "--facility", "256"][..],
                "out of range",
            ),
            (
                &["ann", "--card", "65536", "--facility", "1"][..],
                "out of range",
            ),
            (&["ann", "--card", "1"][..], "facility code is needed"),
            (
                &["ann", "--format", "raw", "--card", "1"][..],
                "bits is needed",
            ),
            (
                &["ann", "--format", "raw", "--bits", "4", "--card", "16"][..],
                "fit",
            ),
        ] {
            let e = format!("{:#}", p(args).unwrap_err());
            assert!(e.contains(why), "{args:?}: {e}");
        }
        assert!(p(&["ann"]).is_err(), "--card or --clear is needed");
    }
}
