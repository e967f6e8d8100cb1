"""Which landmarks should align a BlazeFace face: (a) MTCNN's O-Net on the BlazeFace box, or (b)
BlazeFace's own keypoints with a fitted template. Both against the whole MTCNN cascade's 5 points
(what the aligner and the embedder's template were made with), in inter-ocular distances.

(b): eyes and nose are BlazeFace's keypoints 0-2; the mouth corners are the mouth centre (keypoint 3)
plus a mean offset in the face's own frame (eye axis, eye distance), fitted on the first half of the
photos and measured on the second half.

Usage: blazeface_landmarks.py PHOTO_DIR... [--limit N]
"""
import argparse

import numpy as np
import onnxruntime as ort
from PIL import Image

import blazeface_verify as bv
import mtcnn_ref


def frame(eyes):
    """Origin, unit x (along the eyes, scaled by their distance) and unit y of a face."""
    o = (eyes[0] + eyes[1]) / 2
    ex = eyes[1] - eyes[0]
    ey = np.array([-ex[1], ex[0]])
    return o, ex, ey


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    ort.set_default_logger_severity(3)
    sess = ort.InferenceSession(str(bv.HERE.parent / "blazeface_front_128.onnx"))
    mt = mtcnn_ref.MTCNN(min_face=40)
    rows = []
    for p in bv.photos(a.photos, a.limit):
        img = Image.open(p).convert("RGB")
        x, s, px, py = bv.letterbox(img)
        o = sess.run(None, {"input": x})
        f = bv.decode(o[:2], o[2:], s, px, py)
        rgb = np.asarray(img).astype(np.float32)
        m = mt.detect(np.asarray(img))
        if not f or not m:
            continue
        want = m[0][2]
        _, cx, cy, w, h, kp = f[0]
        side = max(w, h)
        box = np.array([[cx - side / 2 + 1, cy - side / 2 + 1, cx + side / 2, cy + side / 2, 1.0]])
        bx, pts = mt.stage3(rgb, box)
        onet = pts[0] if len(pts) else None
        rows.append((want, kp, onet))
    half = len(rows) // 2
    # fit: mouth corners relative to the mouth centre, in the eye frame
    offs = []
    for want, kp, _ in rows[:half]:
        o, ex, ey = frame(kp[:2])
        M = np.stack([ex, ey], 1)
        offs.append([np.linalg.solve(M, want[3] - kp[3]), np.linalg.solve(M, want[4] - kp[3])])
    offs = np.mean(offs, 0)
    ea, eb, miss = [], [], 0
    for want, kp, onet in rows[half:]:
        iod = np.linalg.norm(want[1] - want[0])
        o, ex, ey = frame(kp[:2])
        M = np.stack([ex, ey], 1)
        b = np.array([kp[0], kp[1], kp[2], kp[3] + M @ offs[0], kp[3] + M @ offs[1]])
        eb.append(np.linalg.norm(b - want, axis=1).mean() / iod)
        if onet is None:
            miss += 1
        else:
            ea.append(np.linalg.norm(onet - want, axis=1).mean() / iod)
    ea, eb = np.array(ea), np.array(eb)
    print(f"faces {len(rows)} (fit on {half}, measured on {len(rows) - half}); mouth-corner offsets (eye frame) {offs.round(3).tolist()}")
    print(f"(a) O-Net on the BlazeFace box: mean point error / inter-ocular median {np.median(ea):.3f}, p95 {np.percentile(ea, 95):.3f}; O-Net rejected {miss}")
    print(f"(b) BlazeFace keypoints + fitted mouth corners: median {np.median(eb):.3f}, p95 {np.percentile(eb, 95):.3f}")


if __name__ == "__main__":
    main()
