//! facegate: the on-device library of a face-recognition door controller.
//!
//! Folders are layers; a lower one never imports a higher one:
//!
//! - [`vision`]: pixels to embeddings (decode, detect, align, quality, embed, liveness networks;
//!   the models' manifest);
//! - [`people`]: the gallery, face crops, credentials, per-person policies, re-embedding;
//! - [`access`]: who may come in: the one acceptance rule, the decision over frames, the
//!   presentation cues, enrolment checks, supervision and the guards, and [`access::gate`], the
//!   one place the door opens;
//! - [`door`]: the relay and its timer, the real-time parts, the local control API;
//! - [`daemon`]: the door's loop ([`daemon::run`]), which ties them together;
//! - beside them: [`records`] (audit log, rotation), [`panel`] (reader mode: Wiegand, OSDP),
//!   [`site`] (the MQTT site link), `console` (the web console's code, feature `console`, never
//!   linked by the door), [`config`] (assembles every part's settings), [`control`]
//!   (requests to the running daemon), and at the bottom [`hal`] (the hardware traits),
//!   [`camera`], [`fs`], [`paths`]; [`drivers`] (V4L2, GPIO, rpicam, sd_notify) implement the
//!   traits for the real device.
#![deny(missing_docs)]

pub mod access;
pub mod bench;
pub mod camera;
pub mod config;
#[cfg(feature = "console")]
pub mod console;
pub mod control;
pub mod cores;
pub mod daemon;
pub mod door;
pub mod drivers;
pub mod fs;
pub mod hal;
pub mod memory;
pub mod panel;
pub mod paths;
pub mod people;
pub mod problem;
pub mod records;
pub mod site;
pub mod vision;

/// The image type frames and photos come in.
pub use image::RgbImage;
pub use vision::models::{Manifest, ModelError, ModelSet};
pub use vision::{
    decode::{decode_bytes, decode_file, DecodeError},
    detect::{BBox, Detection, DetectorParams},
    embed::Embedding,
    Face, Pipeline, PipelineError,
};
