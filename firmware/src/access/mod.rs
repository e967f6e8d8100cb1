//! Who may come in, and the one place the door opens: [`gate::Gate`].
//!
//! A newcomer asking "what opens the door?" reads `access/gate.rs`: every source (a recognised
//! face, the exit button, a remote unlock, office hours) is a [`gate::Request`] there, and the
//! gate applies the output mode, lockdown and the audit policy before the relay.

pub mod gate;

pub use gate::{At, DoorState, Gate, GateSettings, Outcome, Recorder, Refusal, Request, Source};
