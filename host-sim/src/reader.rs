//! The simulator's reader-mode lines: Wiegand D0/D1 that record every edge at its simulated
//! time (sending takes simulated time, as on the wire), for the panel side to decode.

use crate::clock::SimClock;
use facegate::hal::Clock;
use facegate::reader::OutputError;
use facegate::wiegand::{Edge, WiegandLines};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
