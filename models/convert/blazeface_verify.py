"""Checks models/blazeface_front_128.onnx against the package's original file, on real photos.

- onnxruntime on the original (`face_detection_front_128x128_barracuda.onnx` from the npm
  tarball, sha256-checked by blazeface_to_onnx.py) vs onnxruntime and tract 0.23.9 (the engine
  the firmware runs) on the converted file: max abs difference of the raw outputs;
- the decoded faces (the reference decoder below: the spec of firmware/src/vision/blazeface.rs)
  vs MTCNN's (onnxruntime cascade of mtcnn_ref.py, if given --mtcnn) on the same photos: box
  centre and eye positions in inter-ocular distances, and how many faces each finds.

Usage: blazeface_verify.py PHOTO_DIR... [--limit N] (photos are searched recursively).
"""
import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tract
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from blazeface_to_onnx import MEMBER, MEMBER_SHA256, OUTPUTS, TARBALL, WORK_DIR  # noqa: E402

SIZE = 128
# (cells a side, anchors a cell) of the two output heads, in output order.
HEADS = [(16, 2), (8, 6)]
SCORE = 0.5
IOU = 0.3


def letterbox(img):
    """RGB image -> ([1,128,128,3] in [-1,1], scale, pad_x, pad_y): the frame fitted into the
    square with black (0 -> -1) bars, as the firmware does it."""
    w, h = img.size
    s = SIZE / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    px, py = (SIZE - nw) // 2, (SIZE - nh) // 2
    canvas = Image.new("RGB", (SIZE, SIZE))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), (px, py))
    x = np.asarray(canvas, dtype=np.float32) / 127.5 - 1.0
    return x[None], s, px, py


def decode(scores, boxes, s, px, py):
    """Raw outputs -> faces in image pixels: [(score, cx, cy, w, h, keypoints[6][2])], best first,
    after MediaPipe's weighted NMS (overlapping boxes averaged, weighted by score)."""
    dets = []
    for (cells, per), sc, bx in zip(HEADS, scores, boxes):
        sc, bx = sc.reshape(-1), bx.reshape(-1, 16)
        for i in np.nonzero(sc > np.log(SCORE / (1 - SCORE)))[0]:
            cell = i // per
            ax, ay = (cell % cells + 0.5) / cells, (cell // cells + 0.5) / cells
            r = bx[i] / SIZE
            v = np.array([ax + r[0], ay + r[1], r[2], r[3]] + [a + d for k in range(6) for a, d in ((ax, r[4 + 2 * k]), (ay, r[5 + 2 * k]))])
            dets.append((1 / (1 + np.exp(-sc[i])), v))
    dets.sort(key=lambda d: -d[0])
    out = []
    while dets:
        best = dets[0]
        group = [d for d in dets if iou(best[1], d[1]) >= IOU]
        dets = [d for d in dets if iou(best[1], d[1]) < IOU]
        w = np.array([d[0] for d in group])
        v = (np.stack([d[1] for d in group]) * w[:, None]).sum(0) / w.sum()
        # from the 128 square to image pixels
        v = v * SIZE
        v[0::2][[0] + list(range(2, 8))] -= px
        v[1::2][[0] + list(range(2, 8))] -= py
        v /= s
        out.append((best[0], v[0], v[1], v[2], v[3], v[4:].reshape(6, 2)))
    return out


def iou(a, b):
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def photos(dirs, limit):
    out = []
    for d in dirs:
        d = Path(d)
        files = [d] if d.is_file() else sorted(p for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out += files
    return out[:limit] if limit else out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--model", type=Path, default=HERE.parent / "blazeface_front_128.onnx")
    ap.add_argument("--work-dir", type=Path, default=WORK_DIR)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--mtcnn", action="store_true", help="compare with MTCNN's eyes (mtcnn_ref.py)")
    args = ap.parse_args()

    with tarfile.open(args.work_dir / TARBALL) as t:
        original = t.extractfile(MEMBER).read()
    assert hashlib.sha256(original).hexdigest() == MEMBER_SHA256
    ort.set_default_logger_severity(3)
    ref = ort.InferenceSession(original, providers=["CPUExecutionProvider"])
    ours = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    plan = tract.onnx().load(str(args.model)).into_model().into_runnable()
    order = list(OUTPUTS)  # original output names, in output order
    mt = None
    if args.mtcnn:
        import mtcnn_ref

        mt = mtcnn_ref.MTCNN(min_face=40)

    max_ort = max_tract = max_rel = best_diff = 0.0
    count_diff = 0
    n = found = agree = 0
    eye_err, centre_err = [], []
    for p in photos(args.photos, args.limit):
        img = Image.open(p).convert("RGB")
        x, s, px, py = letterbox(img)
        r = ref.run(order, {ref.get_inputs()[0].name: x})
        o = ours.run(list(OUTPUTS.values()), {"input": x})
        t = [a.to_numpy() for a in plan.run([x])]
        max_ort = max(max_ort, max(float(np.abs(a - b).max()) for a, b in zip(r, o)))
        max_tract = max(max_tract, max(float(np.abs(a - b).max()) for a, b in zip(r, t)))
        max_rel = max(max_rel, max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(r, t)))
        faces = decode(r[:2], r[2:], s, px, py)
        tf = decode(t[:2], t[2:], s, px, py)
        if faces and tf:
            # the best face through tract vs through the original, as a fraction of its width
            best_diff = max(best_diff, float(np.abs(np.array(faces[0][1:5]) - np.array(tf[0][1:5])).max() / faces[0][3]))
        count_diff += len(faces) != len(tf)
        n += 1
        found += bool(faces)
        if mt is not None and faces:
            m = mt.detect(np.asarray(img))
            if len(m):
                # the largest MTCNN face against the best BlazeFace face
                box, _, lm = m[0]
                iod = np.linalg.norm(lm[1] - lm[0])
                f = faces[0]
                # BlazeFace keypoints 0, 1: the eyes as seen in the image (right eye of the
                # person first, on the image's left)
                eyes = f[5][:2]
                eye_err.append(max(np.linalg.norm(eyes[0] - lm[0]), np.linalg.norm(eyes[1] - lm[1])) / iod)
                mc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
                centre_err.append(np.linalg.norm(np.array([f[1], f[2]]) - mc) / iod)
                agree += eye_err[-1] < 0.25
        if n <= 5 or not faces:
            desc = ", ".join(f"{f[0]:.2f} at ({f[1]:.0f},{f[2]:.0f}) {f[3]:.0f}x{f[4]:.0f}" for f in faces)
            print(f"{p}: {img.size[0]}x{img.size[1]}: {desc or 'no face'}")
    print(f"photos {n}, with a face found {found}")
    print(f"max abs diff vs the original (onnxruntime): converted/onnxruntime {max_ort:.2e}, converted/tract {max_tract:.2e} ({max_rel:.1e} of the largest output magnitude)")
    print(f"decoded via tract vs via the original: best box differs by at most {best_diff:.4f} of its width; "
          f"photos with a different number of faces: {count_diff}")
    if eye_err:
        e, c = np.array(eye_err), np.array(centre_err)
        print(f"vs MTCNN on {len(e)} photos: eye error / inter-ocular median {np.median(e):.3f}, p95 {np.percentile(e, 95):.3f}, "
              f"max {e.max():.3f}; box centre median {np.median(c):.3f}; eyes within 0.25: {agree}/{len(e)}")


if __name__ == "__main__":
    main()
