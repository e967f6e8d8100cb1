//! facegate-sim: a simulated camera, relay, door inputs and clock that run the real door daemon
//! ([`facegate::daemon::run`]) on scripted frames made from real photos, faster than real time.
//!
//! A scenario (TOML, see [`scenario`]) enrols people, plays steps (photos for some seconds, stalls,
//! unplugged cameras, gallery edits, signals) and states what the door must do; [`runner`] runs
//! it and checks those expectations.

pub mod at_work;
pub mod attack;
pub mod clock;
pub mod devices;
pub mod reader;
pub mod runner;
pub mod scenario;

pub use clock::SimClock;
pub use devices::{SimCamera, SimRelay, SimSensors};
pub use runner::{run_scenario, Report, RunOptions};
pub use scenario::Scenario;
