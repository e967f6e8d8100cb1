//! Reader mode: facegate as the face reader of an access-control panel (the credential output,
//! Wiegand lines, OSDP with Secure Channel).

pub mod osdp;
#[cfg(feature = "osdp")]
pub mod osdp_pd;
pub mod reader;
pub mod wiegand;
pub mod wiegand_in;
