//! Moving a gallery to another embedding network (`facegate reembed`): every enrolment embedded
//! again from its face crop ([`crate::people::crops`]), all or nothing.

use crate::people::crops::{CropError, CropStore};
use crate::people::gallery::Gallery;
use crate::vision::align::Aligner;
use crate::vision::embed::Embedder;
use crate::vision::models::{EmbedderManifest, ModelError};

/// Why a gallery could not be re-embedded (nothing is changed then).
#[derive(Debug, thiserror::Error)]
pub enum ReembedError {
    /// Entries enrolled before crops were kept, or whose crop was deleted.
    #[error(
        "{} photo(s) have no face crop (enrolled before facegate kept crops), so no other \
         network can embed them: {}; re-enrol those people (facegate remove, then enroll) or \
         remove them, then run reembed again",
        .0.len(),
        .0.join(", ")
    )]
    MissingCrops(Vec<String>),
    /// A crop could not be read, or is not what the gallery refers to.
    #[error("person {id:?}, photo {source_photo}: {error}")]
    Crop {
        /// The person.
        id: String,
        /// The enrolled photo's file name.
        source_photo: String,
        /// What is wrong.
        error: CropError,
    },
    /// The crop's landmarks cannot be aligned to the network's template.
    #[error("person {id:?}, photo {source_photo}: the crop's landmarks are degenerate")]
    Degenerate {
        /// The person.
        id: String,
        /// The enrolled photo's file name.
        source_photo: String,
    },
    /// The network failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// `gallery` moved to the network `embedder` described by `spec`: every embedding recomputed
/// from its face crop in `store`, the model fingerprint `spec`'s; names, ids, dates and crops
/// unchanged. All or nothing: refused if any entry has no crop (naming each), or on the first
/// crop that cannot be read. `progress` is called after each photo.
pub fn reembed(
    gallery: &Gallery,
    store: &CropStore,
    embedder: &mut Embedder,
    spec: &EmbedderManifest,
    mut progress: impl FnMut(),
) -> Result<Gallery, ReembedError> {
    let missing: Vec<String> = gallery
        .people
        .iter()
        .flat_map(|p| p.enrolments.iter().map(move |e| (p, e)))
        .filter(|(_, e)| e.crop.is_none())
        .map(|(p, e)| format!("{} ({})", p.id, e.source))
        .collect();
    if !missing.is_empty() {
        return Err(ReembedError::MissingCrops(missing));
    }
    let mut out = gallery.clone();
    out.model = spec.fingerprint.clone();
    let mut aligner = Aligner::default();
    for p in &mut out.people {
        for e in &mut p.enrolments {
            let crop_ref = e.crop.as_ref().expect("checked above");
            let crop = store.get(crop_ref).map_err(|error| ReembedError::Crop {
                id: p.id.clone(),
                source_photo: e.source.clone(),
                error,
            })?;
            let chip = crop
                .chip(&mut aligner, &spec.template, spec.input_size)
                .ok_or_else(|| ReembedError::Degenerate {
                    id: p.id.clone(),
                    source_photo: e.source.clone(),
                })?;
            e.embedding = embedder.embed(&chip)?.0;
            progress();
        }
    }
    Ok(out)
}
