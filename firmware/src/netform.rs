//! `embedder = "auto"`: the form of the network (int8 or f32) that runs fastest on this CPU,
//! without ever invalidating the enrolled gallery (which keeps the form it was enrolled with
//! until `facegate reembed` moves it).
//!
//! tract picks its kernels at run time: int8 is fast only with a dot-product instruction
//! (aarch64 `sdot`: Cortex-A76, Pi 5); on a Cortex-A72 (Pi 4) its int8 kernel multiplies in
//! 16 bits on the one integer-multiply pipe, and on x86 the int8 form measured slower than f32
//! even with AVX-512 VNNI (docs/performance.md, "Which network form for which CPU").

use crate::gallery::Gallery;
use crate::models::{EmbedderManifest, ModelError, ModelSet};
use std::path::Path;

/// The embedder name that asks for this choice.
pub const AUTO: &str = "auto";

/// Whether tract's int8 kernels beat its f32 ones on this CPU, and why.
pub fn int8_is_faster() -> (bool, &'static str) {
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            (
                true,
                "aarch64 with dot-product (sdot): tract's fast int8 kernel",
            )
        } else {
            (
                false,
                "aarch64 without dot-product (e.g. Cortex-A72, Pi 4): f32 beats tract's 16-bit int8 kernel",
            )
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        (
            false,
            "x86_64: f32 measured faster than int8, even with VNNI",
        )
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        (false, "no fast int8 kernel known for this CPU")
    }
}

/// The forms of `spec`'s network in `models` (same source, input and output), f32 and int8,
/// whose files this model set can read.
fn forms<'a>(
    models: &'a ModelSet,
    spec: &EmbedderManifest,
) -> Vec<(&'a str, &'a EmbedderManifest)> {
    models
        .manifest
        .embedders
        .iter()
        .filter(|(_, e)| {
            e.source == spec.source
                && e.input_size == spec.input_size
                && e.dim == spec.dim
                && models.has_file(&e.file)
        })
        .map(|(n, e)| (n.as_str(), e))
        .collect()
}

/// The embedder `auto` stands for. The gallery's own network when the manifest has it and its
/// file is here (so a gallery enrolled elsewhere keeps working), else the form of the
/// manifest's default network that this CPU runs fastest.
pub fn choose<'a>(
    models: &'a ModelSet,
    gallery_model: Option<&str>,
) -> Result<(&'a str, &'a EmbedderManifest), ModelError> {
    let by_gallery = gallery_model.and_then(|fp| {
        models
            .manifest
            .embedders
            .iter()
            .find(|(_, e)| e.fingerprint == fp && models.has_file(&e.file))
    });
    if let Some((name, spec)) = by_gallery {
        return Ok((name.as_str(), spec));
    }
    let (default, spec) = models.embedder(None)?;
    let want = if int8_is_faster().0 { "int8" } else { "f32" };
    Ok(forms(models, spec)
        .into_iter()
        .find(|(_, e)| e.quantization == want)
        .unwrap_or((default, spec)))
}

/// `requested` with `auto` resolved against the gallery at `gallery` (unreadable or absent: no
/// gallery); other names are returned as they are.
pub fn resolve(
    models: &ModelSet,
    requested: Option<&str>,
    gallery: &Path,
) -> Result<Option<String>, ModelError> {
    if requested != Some(AUTO) {
        return Ok(requested.map(str::to_owned));
    }
    let gallery_model = Gallery::load_any_model(gallery)
        .ok()
        .flatten()
        .filter(|g| !g.people.is_empty())
        .map(|g| g.model);
    let (name, spec) = choose(models, gallery_model.as_deref())?;
    let (int8, why) = int8_is_faster();
    let fastest = if int8 { "int8" } else { "f32" };
    if spec.quantization != fastest && gallery_model.as_deref() == Some(spec.fingerprint.as_str()) {
        if let Some((other, _)) = forms(models, spec)
            .into_iter()
            .find(|(_, e)| e.quantization == fastest)
        {
            tracing::warn!(
                "embedder auto: {name}, the gallery's network; {other} is faster here ({why}): \
                 `facegate reembed --embedder {other}` moves the gallery to it"
            );
            return Ok(Some(name.to_owned()));
        }
    }
    tracing::info!("embedder auto: {name} ({why})");
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> ModelSet {
        ModelSet::builtin().unwrap()
    }

    #[test]
    fn a_gallery_of_any_available_network_keeps_its_network() {
        let m = models();
        let dlib = &m.manifest.embedders["dlib_resnet_v1_int8"];
        let (name, _) = choose(&m, Some(&dlib.fingerprint)).unwrap();
        assert_eq!(name, "dlib_resnet_v1_int8");
    }

    #[test]
    fn without_a_gallery_the_cpu_picks_a_form_of_the_default_network() {
        let m = models();
        let (name, spec) = choose(&m, None).unwrap();
        let default = &m.manifest.embedders[&m.manifest.default_embedder];
        assert_eq!(spec.source, default.source);
        let want = if int8_is_faster().0 { "int8" } else { "f32" };
        // The wanted form when this model set can read it, else the default.
        let available = forms(&m, default)
            .iter()
            .any(|(_, e)| e.quantization == want);
        if available {
            assert_eq!(spec.quantization, want, "{name}");
        } else {
            assert_eq!(name, m.manifest.default_embedder);
        }
    }

    #[test]
    fn auto_follows_an_enrolled_gallery_and_other_names_pass_through() {
        let m = models();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.toml");
        assert_eq!(
            resolve(&m, Some("dlib_resnet_v1_int8"), &path).unwrap(),
            Some("dlib_resnet_v1_int8".into())
        );
        assert_eq!(resolve(&m, None, &path).unwrap(), None);
        let dlib = m.manifest.embedders["dlib_resnet_v1_int8"]
            .fingerprint
            .clone();
        let text = format!(
            "format = 2\nmodel = \"{dlib}\"\n[[person]]\nid = \"ada\"\nname = \"Ada\"\n\
             [[person.enrolments]]\nenrolled_at = \"2026-01-01T00:00:00Z\"\nsource = \"a.jpg\"\n\
             sha256 = \"{}\"\nembedding = \"AACAPw==\"\n",
            "ab".repeat(32)
        );
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            resolve(&m, Some(AUTO), &path).unwrap(),
            Some("dlib_resnet_v1_int8".into())
        );
    }
}
