"""Check dlib_resnet_v1_f32.onnx against dlib itself on real aligned face chips.

For every face that dlib's HOG detector finds in the photos under --faces (all sets), dlib makes
the 150x150 chip (dlib_chips.FaceChipper), dlib-bin's face_recognition_model_v1 computes the
reference descriptor from that chip, and onnxruntime runs our ONNX on the same chip normalised
as the Rust side does it. Prints max abs diff and min cosine over all chips, and the checks of
dlib_chips' image->chip map; with --report, writes them to VERIFY-dlib.md (figures only).
"""
import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

import dlib
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dlib_assets  # noqa: E402
import dlib_chips  # noqa: E402


def collect_chips(faces_dir, chipper):
    """[(relative photo path, chip index in photo, chip)] for every detected face, and the
    image->chip map checks of dlib_chips per face: (centroid error, map error, sampling offset)."""
    out, checks = [], []
    for rel in dlib_chips.photos(faces_dir):
        img = dlib_chips.load_rgb(Path(faces_dir) / rel)
        for i, face in enumerate(chipper.faces(img)):
            out.append((rel, i, face.chip))
            checks.append((dlib_chips.landmark_centroid_error(face), dlib_chips.check_mapping(face.details, img.shape),
                           dlib_chips.sampling_offset(face.details, img.shape)))
    return out, checks


def dlib_descriptors(facerec, chips):
    # The list overload is dlib's batch_compute_face_descriptors_from_aligned_images (no jitter).
    return np.array([np.array(d) for d in facerec.compute_face_descriptor(list(chips))], dtype=np.float64)


def onnx_descriptors(model_path, chips, batch=16):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x = dlib_chips.normalise(np.stack(chips))
    return np.concatenate([sess.run(["embedding"], {"input": x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def cosine(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", type=Path, default=dlib_assets.DEFAULT_SDIST, help="face_recognition_models-0.3.0.tar.gz")
    ap.add_argument("--work-dir", type=Path, default=dlib_assets.DEFAULT_WORK_DIR, help="where the .dat files are extracted")
    ap.add_argument("--faces", type=Path, default=dlib_assets.DEFAULT_FACES, help="photo folder (shared/faces)")
    ap.add_argument("--model", type=Path, default=dlib_assets.DEFAULT_OUT_DIR / "dlib_resnet_v1_f32.onnx")
    ap.add_argument("--report", type=Path, help="write the figures to this markdown file (e.g. models/VERIFY-dlib.md)")
    args = ap.parse_args()

    dats = dlib_assets.extract(args.sdist, args.work_dir)
    chipper = dlib_chips.FaceChipper(dats[dlib_assets.SHAPE5_DAT])
    facerec = dlib.face_recognition_model_v1(str(dats[dlib_assets.RESNET_DAT]))

    chips, checks = collect_chips(args.faces, chipper)
    n_photos = len({rel for rel, _, _ in chips})
    ref = dlib_descriptors(facerec, [c for _, _, c in chips])
    got = onnx_descriptors(args.model, [c for _, _, c in chips]).astype(np.float64)
    offsets = ", ".join(f"{n} faces offset ({dx:+.2f}, {dy:+.2f}) image px"
                        for (dx, dy), n in sorted(Counter((round(o[0], 2), round(o[1], 2)) for _, _, o in checks).items()))
    offsets += f"; max map error at the sampled points {max(c[1] for c in checks):.3f} chip px"
    diff = np.abs(ref - got)
    cos = cosine(ref, got)
    worst = int(np.argmax(diff.max(axis=1)))
    lines = [
        f"chips: {len(chips)} faces from {n_photos} photos (of {len(dlib_chips.photos(args.faces))} under the faces folder)",
        f"max abs diff (dlib-bin vs onnxruntime, over all 128 dims of all chips): {diff.max():.3e}",
        f"mean abs diff: {diff.mean():.3e}",
        f"min cosine similarity: {cos.min():.9f}",
        f"max |L2 norm dlib - L2 norm onnx|: {np.abs(np.linalg.norm(ref, axis=1) - np.linalg.norm(got, axis=1)).max():.3e}",
        f"worst chip: {chips[worst][0]} face {chips[worst][1]}",
        "image->chip map (dlib_chips.image_to_chip_matrix): landmark centroid vs dlib's 5-point template fit, "
        f"max error {max(c[0] for c in checks):.1e} chip px",
        f"where dlib samples the chip vs that map: {offsets}",
    ]
    print("\n".join(lines))
    if args.report:
        model_sha = dlib_assets.sha256_file(args.model)
        args.report.write_text(
            "# dlib ResNet v1 -> ONNX: verification\n\n"
            "## f32 against dlib\n\n"
            "Command (from the repository root):\n\n"
            f"    python {shlex.join(sys.argv)}\n\n"
            f"Model: `{args.model.name}` sha256 `{model_sha}`; reference: dlib-bin {dlib.__version__} "
            f"`face_recognition_model_v1.compute_face_descriptor` on the same dlib chips "
            f"(get_face_chip size 150 padding 0.25, HOG detector upsample {chipper.upsample}, 5-point predictor); "
            f"onnxruntime {ort.__version__} CPU.\n\n"
            + "".join(f"- {line}\n" for line in lines))
        print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
