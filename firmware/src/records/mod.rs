//! What happened at the door, kept so it cannot be quietly edited: the audit log (hash-chained,
//! fsynced, append-only) and its rotation.

pub mod audit;
pub mod faces;
pub mod rotation;
