#!/usr/bin/env python3
"""Check our MiniFASNet ONNX files against the reference (PyTorch on the original weights) on real photos.

For every face `facegate embed` finds in the given photos: the crop of the reference implementation (the
detector's box scaled 2.7x / 4.0x about its centre, the scale capped so the box fits, shifted to stay inside
the image, resized to 80x80 with bilinear interpolation, BGR 0..255), then the reference's softmax (torch),
onnxruntime and tract on our files. Reports the largest difference and each photo's liveness score (the two
networks' class-1 probabilities averaged, as the reference does). Writes a Markdown report.

Usage: verify_minifasnet.py --weights DIR [--facegate target/release/facegate] [--report F] PHOTO_OR_DIR...
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
import tract

sys.path.insert(0, str(Path(__file__).parent))
from minifasnet_to_onnx import OUTPUTS, load  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent


def faces(facegate, paths):
    out = subprocess.run([str(facegate), "embed", *map(str, paths)], capture_output=True, text=True)
    if out.returncode not in (0, 2):
        sys.exit(f"facegate embed failed: {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        for i, f in enumerate(rec.get("faces") or []):
            yield Path(rec["path"]), i, f["box"]


def crop(img, box, scale):
    """The reference's crop rule (written from its description), integer corners, then 80x80 bilinear."""
    h, w = img.shape[:2]
    x, y, bw, bh = box
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    cx, cy = x + bw / 2, y + bh / 2
    nw, nh = bw * scale, bh * scale
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0
    if y0 < 0:
        y1, y0 = y1 - y0, 0
    if x1 > w:
        x0, x1 = x0 - (x1 - w), w
    if y1 > h:
        y0, y1 = y0 - (y1 - h), h
    patch = img[int(y0):int(y1), int(x0):int(x1)]
    return cv2.resize(patch, (80, 80))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--facegate", default="target/release/facegate")
    ap.add_argument("--report")
    ap.add_argument("photos", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(1)
    nets = []
    for name, (onnx_name, scale) in OUTPUTS.items():
        ref = load(Path(a.weights) / name)
        path = MODELS / onnx_name
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        tr = tract.onnx().load(str(path)).into_model().into_runnable()
        nets.append((onnx_name, scale, ref, sess, tr))
    rows, worst_ort, worst_tract, n = [], 0.0, 0.0, 0
    for path, i, box in faces(a.facegate, a.photos):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        probs = {"torch": [], "ort": [], "tract": []}
        for onnx_name, scale, ref, sess, tr in nets:
            x = crop(img, box, scale).transpose(2, 0, 1)[None].astype(np.float32)
            with torch.no_grad():
                p_ref = torch.softmax(ref(torch.from_numpy(x)), 1).numpy()
            p_ort = sess.run(None, {"input": x})[0]
            p_tr = tr.run([x])[0].to_numpy()
            worst_ort = max(worst_ort, float(np.abs(p_ort - p_ref).max()))
            worst_tract = max(worst_tract, float(np.abs(p_tr - p_ref).max()))
            probs["torch"].append(p_ref[0])
            probs["ort"].append(p_ort[0])
            probs["tract"].append(p_tr[0])
        live = {k: float(np.mean([p[1] for p in v])) for k, v in probs.items()}
        label = int(np.argmax(np.mean(probs["torch"], axis=0)))
        rows.append((path.name, i, live["torch"], live["tract"], label))
        n += 1
    lines = [
        "| photo | face | real (torch) | real (tract) | reference label |",
        "|---|---|---|---|---|",
    ] + [f"| {p} | {i} | {r:.4f} | {t:.4f} | {lab}{' (real)' if lab == 1 else ''} |" for p, i, r, t, lab in rows]
    summary = (f"{n} faces; largest |onnxruntime - torch| = {worst_ort:.2e}, largest |tract - torch| = "
               f"{worst_tract:.2e} (softmax probabilities)")
    print("\n".join(lines))
    print(summary)
    if a.report:
        Path(a.report).write_text("\n".join([summary, "", *lines, ""]))


if __name__ == "__main__":
    main()
