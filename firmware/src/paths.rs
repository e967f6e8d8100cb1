//! Where the door's files live by default: one place, for the daemon and the admin CLI alike
//! (the unit's `ConfigurationDirectory`, `StateDirectory` and `RuntimeDirectory`).

/// The door's config file, for the daemon and the admin CLI alike.
pub const DEFAULT_CONFIG: &str = "/etc/facegate/config.toml";
/// `[gallery] path` by default (the unit's `StateDirectory`).
pub const DEFAULT_GALLERY: &str = "/var/lib/facegate/gallery.toml";
/// `[audit] path` by default.
pub const DEFAULT_AUDIT: &str = "/var/lib/facegate/audit.jsonl";
/// The local control API's socket by default.
pub const DEFAULT_SOCKET: &str = "/run/facegate/control.sock";
