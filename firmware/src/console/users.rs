//! The console's accounts: a TOML file of names, roles and argon2id password hashes, written
//! atomically with mode 0600 (`facegate console user add/remove`), read by the console at start
//! and whenever it changes.

use super::ConsoleError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The longest users file read (a few hundred accounts).
pub const MAX_FILE: u64 = 256 * 1024;
/// The longest password hashed (argon2 takes any length; this bounds the work a request makes).
pub const MAX_PASSWORD: usize = 256;
/// The shortest password accepted when an account is made.
pub const MIN_PASSWORD: usize = 10;
/// The longest login name.
pub const MAX_NAME: usize = 32;
/// The most memory a stored hash may ask for (KiB): 64 MiB.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Live view, door status, audit log.
    Viewer,
    /// Everything: door controls, people, review.
    Admin,
}

impl Role {
    /// Its word in the file and on the command line.
    pub fn word(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    /// `viewer` or `admin`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name (1 to [`MAX_NAME`] of `a-z A-Z 0-9 . _ -`): it becomes `NAME@console` in
    /// the door's audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The password's argon2id hash (PHC string).
    pub hash: String,
}

/// The users file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// The accounts.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// Whether `name` is a usable login name: it is recorded in the door's audit log as
/// `NAME@console`, so only characters of the control API's NAME (no `@`: that is ours).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The argon2id hasher with the crate's recommended parameters (19 MiB, 2 passes).
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// The argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| ConsoleError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ConsoleError::Hash(e.to_string()))?;
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ConsoleError::Hash(e.to_string()))?
        .to_string())
}

/// A hash to check against when the user does not exist, so that an unknown name takes as long
/// as a wrong password (no telling which names exist by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

impl Users {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, ConsoleError> {
        let users: Users =
            toml::from_str(text).map_err(|e| ConsoleError::UsersFile(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for u in &users.users {
            if !valid_name(&u.name) {
                return Err(ConsoleError::UsersFile(format!(
                    "{:?} is not a login name (1 to {MAX_NAME} of a-z A-Z 0-9 . _ -)",
                    u.name.chars().take(40).collect::<String>()
                )));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(ConsoleError::UsersFile(format!(
                    "{} is there twice",
                    u.name
                )));
            }
            let bad = |why: String| ConsoleError::UsersFile(format!("{}: {why}", u.name));
            let hash = PasswordHash::new(&u.hash)
                .map_err(|e| bad(format!("the hash is not a PHC string: {e}")))?;
            if hash.algorithm != argon2::Algorithm::Argon2id.ident() {
                return Err(bad("the hash is not argon2id".into()));
            }
            // Each login runs these parameters: a file that asks for gigabytes or minutes is
            // refused rather than let one login stall the console.
            let p = argon2::Params::try_from(&hash)
                .map_err(|e| bad(format!("the hash's parameters: {e}")))?;
            if p.m_cost() > MAX_MEMORY_KIB || p.t_cost() > 16 || p.p_cost() > 8 {
                return Err(bad("the hash's parameters are too costly".into()));
            }
        }
        Ok(users)
    }

    /// Reads the file at `path`; a missing file is no accounts. A file others may read or
    /// write is refused: it holds password hashes.
    pub fn load(path: &Path) -> Result<Self, ConsoleError> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(ConsoleError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let io = |source| ConsoleError::Io {
            path: path.to_owned(),
            source,
        };
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ConsoleError::UsersFile(format!(
                "{} has mode {:o}: it holds password hashes, make it 0600 (chmod 600)",
                path.display(),
                mode & 0o777
            )));
        }
        let mut text = String::new();
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ConsoleError::UsersFile(format!(
                "{} is larger than {MAX_FILE} bytes",
                path.display()
            )));
        }
        Self::parse(&text)
    }

    /// Writes the file atomically (a temporary file renamed over it) with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ConsoleError> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let text = toml::to_string(self).map_err(|e| ConsoleError::UsersFile(e.to_string()))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let io = |source| ConsoleError::Io {
            path: path.to_owned(),
            source,
        };
        // tempfile makes its file 0600 already; set it anyway, it is what matters here.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        // Written by root (`facegate console user add`) into the console's state folder: the
        // file takes the folder's owner, so the console (its user owns the folder) can read it.
        if rustix::process::geteuid().is_root() {
            use std::os::unix::fs::MetadataExt;
            let d = std::fs::metadata(dir).map_err(io)?;
            std::os::unix::fs::fchown(tmp.as_file(), Some(d.uid()), Some(d.gid())).map_err(io)?;
        }
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds an account, or sets the password and role of an existing one.
    pub fn set(&mut self, name: &str, role: Role, password: &str) -> Result<(), ConsoleError> {
        if !valid_name(name) {
            return Err(ConsoleError::BadInput(format!(
                "not a login name: 1 to {MAX_NAME} of a-z A-Z 0-9 . _ -"
            )));
        }
        let n = password.chars().count();
        if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
            return Err(ConsoleError::BadInput(format!(
                "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )));
        }
        let hash = hash_password(password)?;
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.role = role;
                u.hash = hash;
            }
            None => self.users.push(User {
                name: name.to_owned(),
                role,
                hash,
            }),
        }
        Ok(())
    }

    /// Removes the account `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        self.users.len() != before
    }

    /// The account whose password is `password`, or `None` (unknown name or wrong password,
    /// not told apart, and taking the same time).
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        if password.len() > MAX_PASSWORD {
            return None;
        }
        let user = self.get(name);
        let hash: &str = match user {
            Some(u) => &u.hash,
            None => dummy_hash(),
        };
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        user.filter(|_| ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn add_check_remove_and_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::load(&path).unwrap();
        assert!(users.users.is_empty());
        users
            .set("ada", Role::Admin, "correct horse battery")
            .unwrap();
        users.set("bob", Role::Viewer, "another long one").unwrap();
        users.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$"), "{text}");
        assert!(!text.contains("correct horse"));
        let users = Users::load(&path).unwrap();
        assert_eq!(
            users.check("ada", "correct horse battery").map(|u| u.role),
            Some(Role::Admin)
        );
        assert!(users.check("ada", "correct horse batterY").is_none());
        assert!(users.check("nobody", "correct horse battery").is_none());
        let mut users = users;
        assert!(users.remove("bob"));
        assert!(!users.remove("bob"));
    }

    #[test]
    fn refuses_bad_names_short_passwords_and_an_open_file() {
        let mut users = Users::default();
        assert!(users.set("a b", Role::Admin, "long enough pass").is_err());
        assert!(users.set("x@y", Role::Admin, "long enough pass").is_err());
        assert!(users.set("ok", Role::Admin, "short").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        users.set("ok", Role::Admin, "long enough pass").unwrap();
        users.save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Users::load(&path),
            Err(ConsoleError::UsersFile(_))
        ));
        assert!(Users::parse("[[user]]\nname = \"a\"\nrole = \"root\"\nhash = \"x\"\n").is_err());
        assert!(Users::parse("[[user]]\nname = \"a\"\nrole = \"admin\"\nhash = \"x\"\n").is_err());
    }
}
