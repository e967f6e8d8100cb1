//! PINs for the second factor: checked for form, stored as argon2id hashes (PHC strings, a salt
//! of their own each), never in clear. The parameters keep one verification at ~50-100 ms on a
//! Raspberry Pi 4 core (19 MiB, 2 passes, 1 lane: OWASP's argon2id minimum), so a stolen gallery
//! costs an attacker that much per guess and person, and the door verifies a PIN against at
//! most [`crate::access::factors::MAX_PIN_CANDIDATES`] people.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewest digits of a PIN.
pub const MIN_DIGITS: usize = 4;
/// Most digits of a PIN.
pub const MAX_DIGITS: usize = 12;
/// Memory of one hash, KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over it.
pub const PASSES: u32 = 2;

/// A PIN that cannot be used or stored.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Not 4 to 12 digits.
    #[error("a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), nothing else")]
    Form,
    /// The hasher failed (no randomness for the salt).
    #[error("hashing the PIN: {0}")]
    Hash(String),
}

fn hasher() -> Argon2<'static> {
    // Cannot fail: constant parameters within argon2's ranges.
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `pin` has a PIN's form: 4 to 12 ASCII digits.
pub fn check(pin: &str) -> Result<(), PinError> {
    if (MIN_DIGITS..=MAX_DIGITS).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinError::Form)
    }
}

/// The stored form of `pin`: an argon2id PHC string with a fresh random salt.
pub fn hash(pin: &str) -> Result<String, PinError> {
    check(pin)?;
    let salt = SaltString::generate(&mut rand_core::OsRng);
    hasher()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Whether `pin` is the one `stored` was made from. A stored value that is not a PHC string
/// matches nothing.
pub fn verify(pin: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The stored string's own parameters are used (a gallery from a slower setting still works).
    Argon2::default()
        .verify_password(pin.as_bytes(), &parsed)
        .is_ok()
}

/// Whether `stored` is a hash `verify` can use (for the gallery's checks).
pub fn well_formed(stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| h.algorithm.as_str() == "argon2id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_verifies_against_its_hash_only_and_is_never_stored_in_clear() {
        let h = hash("1234").unwrap();
        assert!(well_formed(&h), "{h}");
        assert!(!h.contains("1234"), "{h}");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("1234", &h));
        assert!(!verify("1235", &h));
        assert!(!verify("1234", "not a hash"));
        // A fresh salt each time.
        assert_ne!(hash("1234").unwrap(), h);
    }

    #[test]
    fn only_4_to_12_digits_are_pins() {
        for bad in ["123", "1234567890123", "12a4", "", "12 34", "١٢٣٤"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        for ok in ["0000", "123456789012"] {
            check(ok).unwrap();
        }
    }
}
