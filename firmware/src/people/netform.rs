//! `embedder = "auto"`: the form of the network (int8 or f32) that runs fastest on this CPU,
//! without ever invalidating the enrolled gallery (which keeps the form it was enrolled with
//! until `facegate reembed` moves it).
//!
//! tract picks its kernels at run time: int8 is fast only with a dot-product instruction
//! (aarch64 `sdot`: Cortex-A76, Pi 5); on a Cortex-A72 (Pi 4) its int8 kernel multiplies in
//! 16 bits on the one integer-multiply pipe, and on x86 the int8 form measured slower than f32
//! even with AVX-512 VNNI (docs/performance.md, "Which network form for which CPU").

use crate::people::gallery::Gallery;
use crate::vision::models::{ModelError, ModelSet};
use std::path::Path;

use crate::vision::models::forms;
/// The choice itself needs only the manifest: it lives with it (`models`), below the gallery.
pub use crate::vision::models::{choose, int8_is_faster, AUTO};

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
