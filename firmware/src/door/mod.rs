//! The door's own machinery below the daemon's loop: the relay with its unlock timer
//! ([`relay::Door`]), the pin to drive locked when nothing else can be trusted ([`lockpin`]),
//! the real-time parts (newest-frame mailbox, capture thread, status line: [`realtime`]) and the
//! local control API ([`control_api`]) through which everything outside the door's process (the
//! admin CLI, the site link, the console) asks the door for anything.

pub mod control_api;
pub mod lockpin;
pub mod realtime;
pub mod relay;

pub use relay::Door;
