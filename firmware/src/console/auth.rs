//! Sessions, CSRF tokens and the login rate limit, all in the console's memory (a restart logs
//! everyone out). A session is a random 256-bit token in the `__Host-facegate` cookie; the
//! server keeps only its SHA-256, with the user, role, its CSRF token and its times.

use super::users::Role;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain, enforced by browsers).
pub const COOKIE: &str = "__Host-facegate";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; a login past this ends the oldest.
pub const MAX_SESSIONS: usize = 256;
/// Failed logins allowed per user name and per client address within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Names and addresses whose failures are remembered at once.
const MAX_TRACKED: usize = 10_000;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, super::ConsoleError> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).map_err(|e| super::ConsoleError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Login name.
    pub user: String,
    /// What they may do.
    pub role: Role,
    /// The token every POST form must carry.
    pub csrf: String,
    created: Instant,
    last: Instant,
}

/// The sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// A new session for `user`: its cookie token.
    pub fn start(&self, user: &str, role: Role) -> Result<String, super::ConsoleError> {
        let token = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| live(s, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&token),
            Session {
                user: user.to_owned(),
                role,
                csrf,
                created: now,
                last: now,
            },
        );
        Ok(token)
    }

    /// The session of `token`, if it is live (and marks it used).
    pub fn get(&self, token: &str) -> Option<Session> {
        if token.len() != 64 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(token);
        match map.get_mut(&k) {
            Some(s) if live(s, now) => {
                s.last = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(token));
    }

    /// Ends every session of `user` (their account was removed or changed).
    pub fn end_user(&self, user: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.user != user);
    }

    #[cfg(test)]
    fn age(&self, token: &str, by: Duration) {
        let mut map = self.map.lock().unwrap();
        if let Some(s) = map.get_mut(&key(token)) {
            s.created -= by;
            s.last -= by;
        }
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

/// Failed logins per user name and per client address.
#[derive(Debug, Default)]
pub struct RateLimit {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimit {
    /// Whether a login for `user` from `addr` may be tried now.
    pub fn allowed(&self, user: &str, addr: &str) -> bool {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        [user_key(user), addr_key(addr)].iter().all(|k| {
            map.get_mut(k).is_none_or(|q| {
                prune(q, now);
                q.len() < MAX_FAILURES
            })
        })
    }

    /// Records a failed login.
    pub fn failed(&self, user: &str, addr: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, q| {
                prune(q, now);
                !q.is_empty()
            });
            if map.len() >= MAX_TRACKED {
                // Flooded with names: forget the names, keep the addresses (which a flood
                // cannot multiply as easily).
                map.retain(|k, _| k.starts_with("addr:"));
            }
        }
        for k in [user_key(user), addr_key(addr)] {
            let q = map.entry(k).or_default();
            prune(q, now);
            q.push_back(now);
            while q.len() > MAX_FAILURES {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&user_key(user));
    }
}

fn user_key(user: &str) -> String {
    format!("user:{}", user.chars().take(64).collect::<String>())
}

fn addr_key(addr: &str) -> String {
    format!("addr:{addr}")
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old_or_ended() {
        let s = Sessions::default();
        let t = s.start("ada", Role::Admin).unwrap();
        assert_eq!(t.len(), 64);
        let got = s.get(&t).unwrap();
        assert_eq!((got.user.as_str(), got.role), ("ada", Role::Admin));
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get(&"0".repeat(64)).is_none());
        s.age(&t, IDLE + Duration::from_secs(1));
        assert!(s.get(&t).is_none());
        let t = s.start("ada", Role::Admin).unwrap();
        s.end(&t);
        assert!(s.get(&t).is_none());
        let t = s.start("bob", Role::Viewer).unwrap();
        s.end_user("bob");
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn rate_limit_per_user_and_per_address() {
        let r = RateLimit::default();
        for _ in 0..MAX_FAILURES {
            assert!(r.allowed("ada", "10.0.0.1"));
            r.failed("ada", "10.0.0.1");
        }
        assert!(!r.allowed("ada", "10.0.0.2"), "per user");
        assert!(!r.allowed("bob", "10.0.0.1"), "per address");
        assert!(r.allowed("bob", "10.0.0.2"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
