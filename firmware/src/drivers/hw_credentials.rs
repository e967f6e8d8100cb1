//! A Wiegand card reader or keypad wired to the door (cargo feature `hw`, second factors): D0
//! and D1 as GPIO inputs with the kernel's falling-edge events and their monotonic time stamps,
//! so bits are timed by the kernel, not by when the loop reads them (`panel::wiegand_in`
//! decodes). Readers drive 5 V lines: fit a level shifter or divider to 3.3 V.

use crate::hal::{CredentialInput, InputError, Presented};
use crate::panel::wiegand_in::Decoder;
use gpiocdev::line::{Bias, EdgeDetection};
use std::time::Duration;

/// Edge events read per poll at most (a 34-bit card is 34).
const MAX_EDGES_PER_POLL: usize = 256;

/// D0 and D1 of a reader, requested as inputs with edge events.
pub struct GpioWiegandInput {
    request: gpiocdev::Request,
    d1: u32,
    decoder: Decoder,
    gpios: (u8, u8),
}

fn find(gpio: u8) -> Result<gpiocdev::FoundLine, InputError> {
    let name = format!("GPIO{gpio}");
    gpiocdev::find_named_line(&name).ok_or_else(|| {
        InputError(format!(
            "{name}: no such GPIO line (not a Raspberry Pi, or the daemon's user is not in the `gpio` group)"
        ))
    })
}

/// The kernel's monotonic clock, the base of the edge events' time stamps.
fn monotonic() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

impl GpioWiegandInput {
    /// Requests D0 (`d0`) and D1 (`d1`) with pull-ups (the lines idle high).
    pub fn open(d0: u8, d1: u8) -> Result<Self, InputError> {
        let (l0, l1) = (find(d0)?, find(d1)?);
        if l0.chip != l1.chip {
            return Err(InputError(format!(
                "GPIO{d0} and GPIO{d1} are on different chips"
            )));
        }
        let request = gpiocdev::Request::builder()
            .on_chip(&l0.chip)
            .with_consumer("facegated-reader")
            .with_lines(&[l0.info.offset, l1.info.offset])
            .as_input()
            .with_bias(Bias::PullUp)
            .with_edge_detection(EdgeDetection::FallingEdge)
            .request()
            .map_err(|e| InputError(format!("Wiegand reader GPIO{d0}/GPIO{d1}: {e}")))?;
        Ok(Self {
            request,
            d1: l1.info.offset,
            decoder: Decoder::default(),
            gpios: (d0, d1),
        })
    }
}

impl CredentialInput for GpioWiegandInput {
    fn poll(&mut self, _now: Duration) -> Result<Option<Presented>, InputError> {
        let err = |e: gpiocdev::Error| {
            InputError(format!(
                "Wiegand reader GPIO{}/GPIO{}: {e}",
                self.gpios.0, self.gpios.1
            ))
        };
        for _ in 0..MAX_EDGES_PER_POLL {
            if !self.request.has_edge_event().map_err(err)? {
                break;
            }
            let ev = self.request.read_edge_event().map_err(err)?;
            let t = Duration::from_nanos(ev.timestamp_ns);
            if let Some(done) = self.decoder.bit(t, ev.offset == self.d1) {
                return Ok(report(done));
            }
        }
        Ok(self.decoder.end_if_quiet(monotonic()).and_then(report))
    }
}

/// A frame's result: a refused frame is logged (bounded: one per quiet gap) and dropped.
fn report(r: Result<Presented, crate::panel::wiegand_in::FrameError>) -> Option<Presented> {
    match r {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("Wiegand reader: frame refused: {e}");
            None
        }
    }
}
