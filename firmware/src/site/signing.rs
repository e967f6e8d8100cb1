//! Signed site messages (gallery, commands): ed25519 over an explicit byte layout, so a door
//! accepts only what the holder of the site key sent, for its site and its model.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Why a signed message or a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A key file does not hold a key.
    #[error("{0}: not a facegate key (64 hex digits expected)")]
    BadKey(std::path::PathBuf),
    /// Not a whole envelope (torn or garbled message).
    #[error("not a signed facegate message: {0}")]
    Malformed(String),
    /// Signed by another key, or altered after signing.
    #[error("bad signature (signed by another key, or altered)")]
    BadSignature,
}

/// Domain separation: a signature made for anything else never verifies here.
const CONTEXT: &[u8] = b"facegate-site-v1\n";

/// What a door receives: a payload with who it is for, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// `gallery` or `command`.
    pub kind: String,
    /// The site it is for.
    pub site: String,
    /// The door it is for (`*`: every door of the site).
    pub door: String,
    /// Milliseconds since the Unix epoch at signing; a door refuses a version older than the
    /// last it accepted (a replayed old gallery or command).
    pub version: u64,
    /// The embedding model's fingerprint (galleries; empty for commands).
    pub fingerprint: String,
    /// The payload (gallery TOML, or a command's JSON).
    pub payload: String,
    /// The signer's public key, hex.
    pub key: String,
    /// ed25519 signature, hex.
    pub signature: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Envelope {
    /// The bytes signed: every field but the signature, each length-prefixed.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut m = CONTEXT.to_vec();
        for f in [
            self.kind.as_bytes(),
            self.site.as_bytes(),
            self.door.as_bytes(),
            &self.version.to_be_bytes(),
            self.fingerprint.as_bytes(),
            self.payload.as_bytes(),
        ] {
            m.extend_from_slice(&(f.len() as u64).to_be_bytes());
            m.extend_from_slice(f);
        }
        m
    }

    /// Signs a new envelope.
    pub fn sign(
        key: &SiteKey,
        kind: &str,
        site: &str,
        door: &str,
        version: u64,
        fingerprint: &str,
        payload: String,
    ) -> Self {
        let mut e = Self {
            kind: kind.into(),
            site: site.into(),
            door: door.into(),
            version,
            fingerprint: fingerprint.into(),
            payload,
            key: hex(key.0.verifying_key().as_bytes()),
            signature: String::new(),
        };
        e.signature = hex(&key.0.sign(&e.signed_bytes()).to_bytes());
        e
    }

    /// Parses a received message and checks its signature against `trusted`.
    pub fn open(bytes: &[u8], trusted: &VerifyingKey) -> Result<Self, SignError> {
        let e: Self =
            serde_json::from_slice(bytes).map_err(|e| SignError::Malformed(e.to_string()))?;
        let sig = unhex::<64>(&e.signature).ok_or(SignError::BadSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        trusted
            .verify_strict(&e.signed_bytes(), &sig)
            .map_err(|_| SignError::BadSignature)?;
        Ok(e)
    }

    /// The JSON sent to the broker.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The site's private key (the admin's machine only).
pub struct SiteKey(SigningKey);

impl SiteKey {
    /// A new random key (from the kernel's random source).
    pub fn generate() -> Result<Self, SignError> {
        let path = Path::new("/dev/urandom");
        let mut seed = [0u8; 32];
        use std::io::Read;
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|source| SignError::Io {
                path: path.into(),
                source,
            })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Reads a private key file (64 hex digits).
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Io {
            path: path.into(),
            source,
        })?;
        let seed = unhex::<32>(&text).ok_or_else(|| SignError::BadKey(path.into()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Writes the private key (mode 0600, refusing to overwrite) and the public key beside it.
    pub fn save(&self, private: &Path, public: &Path) -> Result<(), SignError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SignError::Io { path, source }
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(private)
            .map_err(io(private))?;
        writeln!(f, "{}", hex(self.0.as_bytes()))
            .and_then(|_| f.sync_all())
            .map_err(io(private))?;
        std::fs::write(public, format!("{}\n", self.public_hex())).map_err(io(public))
    }

    /// The public key, hex (what doors hold).
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }
}

/// Reads a public key file (64 hex digits).
pub fn load_public(path: &Path) -> Result<VerifyingKey, SignError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignError::Io {
        path: path.into(),
        source,
    })?;
    unhex::<32>(&text)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| SignError::BadKey(path.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_envelope_opens_only_with_its_key_and_unaltered() {
        let key = SiteKey::generate().unwrap();
        let other = SiteKey::generate().unwrap();
        let e = Envelope::sign(&key, "gallery", "hq", "*", 7, "fp", "people".into());
        let bytes = e.to_json().into_bytes();
        let trusted = key.0.verifying_key();
        assert_eq!(Envelope::open(&bytes, &trusted).unwrap(), e);
        assert!(matches!(
            Envelope::open(&bytes, &other.0.verifying_key()),
            Err(SignError::BadSignature)
        ));
        // Any field changed after signing: refused.
        let mut changed = e.clone();
        changed.site = "other".into();
        assert!(Envelope::open(changed.to_json().as_bytes(), &trusted).is_err());
        let mut changed = e.clone();
        changed.version = 8;
        assert!(Envelope::open(changed.to_json().as_bytes(), &trusted).is_err());
        // Torn in transit: not even an envelope.
        assert!(matches!(
            Envelope::open(&bytes[..bytes.len() / 2], &trusted),
            Err(SignError::Malformed(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_files_and_the_private_one_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("site.key"), dir.path().join("site.pub"));
        let key = SiteKey::generate().unwrap();
        key.save(&private, &public).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            key.save(&private, &public).is_err(),
            "never overwrites a key"
        );
        let back = SiteKey::load(&private).unwrap();
        assert_eq!(back.public_hex(), key.public_hex());
        let e = Envelope::sign(&back, "command", "hq", "front", 1, "", "{}".into());
        Envelope::open(e.to_json().as_bytes(), &load_public(&public).unwrap()).unwrap();
    }
}
