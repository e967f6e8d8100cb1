//! The simulator's reader-mode lines: Wiegand D0/D1 that record every edge at its simulated
//! time (sending takes simulated time, as on the wire), for the panel side to decode; and the
//! wall-clock times of OSDP card reads queued, to measure their delivery at the panel.

use crate::clock::SimClock;
use facegate::hal::Clock;
use facegate::panel::reader::{CredentialOutput, LinkEvent, OutputError};
use facegate::panel::wiegand::{Edge, WiegandLines};
use facegate::people::credential::Credential;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Wiegand lines recording their edges.
#[derive(Clone)]
pub struct SimWiegand {
    clock: SimClock,
    edges: Arc<Mutex<Vec<Edge>>>,
}

impl SimWiegand {
    /// Lines on `clock`, both released.
    pub fn new(clock: SimClock) -> Self {
        Self {
            clock,
            edges: Arc::default(),
        }
    }

    /// Every edge so far.
    pub fn edges(&self) -> Vec<Edge> {
        self.edges.lock().unwrap().clone()
    }

    fn edge(&self, d1: bool, low: bool) {
        let t = self.clock.now();
        self.edges.lock().unwrap().push(Edge { t, d1, low });
    }
}

impl WiegandLines for SimWiegand {
    fn pulse(&mut self, one: bool, width: Duration) -> Result<(), OutputError> {
        self.edge(one, true);
        self.clock.sleep(width);
        self.edge(one, false);
        Ok(())
    }

    fn gap(&mut self, d: Duration) {
        self.clock.sleep(d);
    }
}

/// A credential output that notes the wall-clock time of each card read it accepted.
pub struct Timed<O> {
    /// The real output.
    pub inner: O,
    /// When each accepted `send` returned.
    pub sent: Arc<Mutex<Vec<SystemTime>>>,
}

impl<O: CredentialOutput> CredentialOutput for Timed<O> {
    fn send(&mut self, credential: &Credential) -> Result<String, OutputError> {
        let r = self.inner.send(credential);
        if r.is_ok() {
            self.sent.lock().unwrap().push(SystemTime::now());
        }
        r
    }

    fn link_events(&mut self) -> Vec<LinkEvent> {
        self.inner.link_events()
    }
}
