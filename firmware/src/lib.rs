//! facegate: the on-device library of a face-recognition door controller.
//!
//! The face pipeline (decode, detect, align, embed) lives in [`vision`]; the networks and the facts
//! the pipeline needs about them come from a manifest ([`models`]), so another embedding network can
//! drop in without code changes.
#![deny(missing_docs)]

pub mod gallery;
pub mod models;
pub mod vision;

pub use models::{Manifest, ModelError, ModelSet};
pub use vision::{
    decode::{decode_bytes, decode_file, DecodeError},
    detect::{BBox, Detection, DetectorParams},
    embed::Embedding,
    Face, Pipeline, PipelineError,
};
