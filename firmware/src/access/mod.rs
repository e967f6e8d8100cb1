//! Who may come in, and the one place the door opens: [`gate::Gate`]. Below the gate: the one
//! acceptance rule ([`acceptance`]), the decision over frames ([`decision`]), the presentation
//! cues ([`cues`]), enrolment's checks ([`enrolment`]), door supervision and the guards
//! ([`supervision`], [`tamper`], [`guard`]).
//!
//! A newcomer asking "what opens the door?" reads `access/gate.rs`: every source (a recognised
//! face, the exit button, a remote unlock, office hours) is a [`gate::Request`] there, and the
//! gate applies the output mode, lockdown and the audit policy before the relay.

pub mod acceptance;
pub mod cues;
pub mod decision;
pub mod enrolment;
pub mod factors;
pub mod gate;
pub mod guard;
pub mod operating_point;
pub mod supervision;
pub mod tamper;

pub use gate::{
    At, DoorState, Factors, Gate, GateSettings, Outcome, Recorder, Refusal, Request, Source,
};
