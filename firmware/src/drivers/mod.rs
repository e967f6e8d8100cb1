//! The real device behind the hardware traits (`hal`): the V4L2 camera and the GPIO relay, the
//! door inputs, the Wiegand lines, the Pi's CSI camera through `rpicam-vid`, systemd's notify
//! socket. Nothing else in the library imports them; `facegated` does.

#[cfg(feature = "hw")]
pub mod hw;
#[cfg(feature = "hw")]
pub mod hw_inputs;
#[cfg(feature = "hw")]
pub mod hw_wiegand;
pub mod rpicam;
pub mod service;
