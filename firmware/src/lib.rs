//! facegate: the on-device library of a face-recognition door controller.
//!
//! The face pipeline (decode, detect, align, embed) lives in [`vision`]; the networks and the facts
//! the pipeline needs about them come from a manifest ([`models`]), so another embedding network can
//! drop in without code changes. The door daemon's loop is [`daemon::run`]; it reaches the hardware
//! only through the traits of [`hal`], so the simulator and the tests drive the same code.
#![deny(missing_docs)]

pub mod acceptance;
pub mod access;
pub mod audit;
pub mod bench;
pub mod camera;
pub mod config;
pub mod control;
pub mod cores;
pub mod credential;
pub mod crops;
pub mod cues;
pub mod daemon;
pub mod decision;
pub mod door;
pub mod enrolment;
pub mod frame;
pub mod fs;
pub mod gallery;
pub mod guard;
pub mod hal;
#[cfg(feature = "hw")]
pub mod hw;
#[cfg(feature = "hw")]
pub mod hw_inputs;
#[cfg(feature = "hw")]
pub mod hw_wiegand;
pub mod lockpin;
pub mod memory;
pub mod models;
pub mod netform;
pub mod osdp;
pub mod paths;
#[cfg(feature = "osdp")]
pub mod osdp_pd;
pub mod policy;
pub mod reader;
pub mod realtime;
pub mod reembed;
pub mod rotation;
pub mod rpicam;
pub mod service;
pub mod site;
pub mod supervision;
pub mod tamper;
pub mod vision;
pub mod wiegand;

/// The image type frames and photos come in.
pub use image::RgbImage;
pub use models::{Manifest, ModelError, ModelSet};
pub use vision::{
    decode::{decode_bytes, decode_file, DecodeError},
    detect::{BBox, Detection, DetectorParams},
    embed::Embedding,
    Face, Pipeline, PipelineError,
};
