//! Who is enrolled: the gallery (format, index, lock, reloader), the face crops kept with each
//! enrolment, card credentials and PINs (hashed), per-person access policies, and moving a gallery to another
//! network (re-embedding, and `embedder = "auto"` following the gallery).

pub mod cluster;
pub mod credential;
pub mod crops;
pub mod gallery;
pub mod netform;
pub mod pin;
pub mod policy;
pub mod reembed;
