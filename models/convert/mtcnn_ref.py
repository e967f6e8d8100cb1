#!/usr/bin/env python3
"""Reference MTCNN cascade in numpy + onnxruntime, following facenet-pytorch 2.6.0 detect_face().

This is the executable spec for the Rust implementation; it reproduces facenet-pytorch's arithmetic,
including its inconsistencies (marked "facenet-pytorch:" below):

  * Pyramid: m = 12/min_face; scales m*0.709^k while min(h,w)*scale >= 12; each level is resized to
    (int(h*scale+1), int(w*scale+1)) with torch "area" interpolation (= adaptive average pooling:
    output cell i averages input [floor(i*in/out), ceil((i+1)*in/out)) per axis), then (x-127.5)*0.0078125.
  * P-Net cells with prob >= 0.6 give boxes floor((2*(x,y)+1)/scale), floor((2*(x,y)+12)/scale) (1-based,
    Matlab heritage). NMS 0.5 per scale, then 0.7 over all scales: torchvision IoU, areas WITHOUT +1,
    a box is suppressed when IoU > threshold.
  * P-Net regression uses width x2-x1 (no +1); R-/O-Net regression (bbreg) uses x2-x1+1.
  * rerec squares around the centre with side max(w,h), w = x2-x1 (no +1), floats kept.
  * Crops: box coords truncated toward zero, clipped to [1, w] / [1, h] (1-based, inclusive) and the
    clipped region image[y-1:ey, x-1:ex] is resized to 24/48 with the same "area" interpolation.
    facenet-pytorch: out-of-image parts are NOT zero-padded (unlike the original MTCNN); the clipped region is
    stretched to the square input. facenet-pytorch also uses area (not bilinear) resampling for the crops.
  * R-Net: prob > 0.7, NMS 0.7 (torchvision), bbreg, rerec. O-Net: prob > 0.7; landmarks are decoded on the
    O-Net INPUT box (before its regression): x = x1 + (x2-x1+1)*lm[0:5] - 1, y = y1 + (y2-y1+1)*lm[5:10] - 1;
    then bbreg (no rerec), then NMS 0.7 'Min' (areas WITH +1, inter/min(area)), suppress when > 0.7.
  * Result boxes are floats in facenet-pytorch's convention (not rounded, not clipped), sorted by area,
    largest first (MTCNN.detect select_largest=True); landmarks are in 0-based pixel coordinates.
    facenet-pytorch: boxes are not shifted by -1 while landmarks are.

Only facenet-pytorch's crash on fully out-of-image boxes (empty crop) is not reproduced: such boxes are dropped.
"""
import argparse
import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

MODELS = Path(__file__).resolve().parent.parent
FACES = Path("/work/shared/faces")


def load_rgb(path) -> np.ndarray:
    """Image file -> HxWx3 uint8 RGB (EXIF orientation applied, alpha dropped)."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _area_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Output i averages input [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out)) along axis (torch 'area')."""
    n_in = x.shape[axis]
    i = np.arange(n_out)
    lo = (i * n_in) // n_out
    hi = -((-(i + 1) * n_in) // n_out)
    # window sums as differences of a zero-prefixed running sum (float64 keeps them exact enough)
    c = np.cumsum(x, axis=axis, dtype=np.float64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n_out
    return (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)


def area_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """HxWxC -> out_h x out_w x C float32 with torch interpolate(mode='area') semantics (separable)."""
    return _area_axis(_area_axis(img, out_h, 0), out_w, 1).astype(np.float32)


def normalise(hwc: np.ndarray) -> np.ndarray:
    """HxWx3 (or NxHxWx3) -> NCHW float32 (x-127.5)*0.0078125."""
    x = (hwc.astype(np.float32) - 127.5) * 0.0078125
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, mode: str) -> np.ndarray:
    """Greedy NMS, highest score first. 'union': torchvision (no +1); 'min': facenet-pytorch nms_numpy (+1)."""
    plus = 1.0 if mode == "min" else 0.0
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if mode == "min":
            o = inter / np.minimum(area[i], area[rest])
        else:
            o = inter / (area[i] + area[rest] - inter)
        order = rest[o <= thresh]
    return np.array(keep, dtype=np.int64)


def rerec(b: np.ndarray) -> np.ndarray:
    """Square boxes around their centre, side = max(w, h) with w = x2-x1 (no +1)."""
    b = b.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """R-/O-Net box regression; width/height with +1."""
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, :4] += reg * np.stack([w, h, w, h], axis=1)
    return b


def crops(img: np.ndarray, boxes: np.ndarray, size: int):
    """Clip boxes to the image (1-based inclusive, truncation toward zero) and area-resize to size x size.

    Returns (NCHW normalised batch, indices of boxes that gave a non-empty crop)."""
    h, w = img.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    out, ok = [], []
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            out.append(area_resize(img[y[k] - 1:ey[k], x[k] - 1:ex[k]], size, size))
            ok.append(k)
    batch = normalise(np.stack(out)) if out else np.zeros((0, 3, size, size), np.float32)
    return batch, np.array(ok, dtype=np.int64)


class MTCNN:
    """P/R/O-Net ONNX sessions plus facenet-pytorch's cascade parameters."""

    def __init__(self, models_dir=MODELS, min_face=20, thresholds=(0.6, 0.7, 0.7), factor=0.709):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.nets = {n: ort.InferenceSession(str(Path(models_dir) / f"mtcnn_{n}.onnx"), opts)
                     for n in ("pnet", "rnet", "onet")}
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    def run(self, net, x):
        return self.nets[net].run(None, {"input": x})

    def stage1(self, img):
        h, w = img.shape[:2]
        scale = 12.0 / self.min_face
        minl = min(h, w) * scale
        found = []
        while minl >= 12:
            lvl = area_resize(img, int(h * scale + 1), int(w * scale + 1))
            prob, reg = self.run("pnet", normalise(lvl))
            ys, xs = np.nonzero(prob[0, 1] >= self.thresholds[0])
            if len(ys):
                cell = np.stack([xs, ys], axis=1).astype(np.float32)
                q1 = np.floor((2 * cell + 1) / scale)
                q2 = np.floor((2 * cell + 12) / scale)
                score = prob[0, 1, ys, xs]
                r = reg[0][:, ys, xs].T
                boxes = np.concatenate([q1, q2, score[:, None], r], axis=1)
                found.append(boxes[nms(boxes[:, :4], score, 0.5, "union")])
            scale *= self.factor
            minl *= self.factor
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, "union")]
        # facenet-pytorch: P-Net regression scales by x2-x1 (no +1)
        wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        out = np.concatenate([boxes[:, :4] + boxes[:, 5:9] * wh, boxes[:, 4:5]], axis=1)
        return rerec(out)

    def stage2(self, img, boxes):
        batch, ok = crops(img, boxes, 24)
        if not len(ok):
            return boxes[:0]
        prob, reg = self.run("rnet", batch)
        boxes, score, reg = boxes[ok], prob[:, 1], reg
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, "union")
        return rerec(bbreg(boxes[pick], reg[pick]))

    def stage3(self, img, boxes):
        batch, ok = crops(img, boxes, 48)
        if not len(ok):
            return boxes[:0], np.zeros((0, 5, 2), np.float32)
        prob, reg, lm = self.run("onet", batch)
        boxes, score = boxes[ok], prob[:, 1]
        keep = score > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg, lm = reg[keep], lm[keep]
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        pts = np.stack([w[:, None] * lm[:, :5] + boxes[:, 0:1] - 1,
                        h[:, None] * lm[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = bbreg(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return boxes[pick], pts[pick]

    def detect(self, rgb: np.ndarray):
        """HxWx3 uint8 RGB -> [(box (x1,y1,x2,y2), score, landmarks 5x2 (x,y)), ...], largest box first.

        Landmark order: left eye, right eye (image left/right), nose, left mouth corner, right mouth corner."""
        img = rgb.astype(np.float32)
        boxes = self.stage1(img)
        if len(boxes):
            boxes = self.stage2(img, boxes)
        pts = np.zeros((0, 5, 2), np.float32)
        if len(boxes):
            boxes, pts = self.stage3(img, boxes)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        return [(tuple(float(v) for v in boxes[i, :4]), float(boxes[i, 4]), pts[i].astype(np.float64))
                for i in order]


def survey(det: MTCNN, faces: Path):
    """Run detect() over the photo sets and print a markdown summary."""
    labels = {}
    with open(faces / "multi_face" / "labels.csv") as f:
        for row in csv.DictReader(f):
            labels[row["file"]] = (int(row["min_faces"]), int(row["max_faces"]))
    print(f"min_face={det.min_face}\n")
    print("| set | image | faces | expected | scores |\n|---|---|---|---|---|")
    for sub in ("multi_face", "no_face", "edge_cases"):
        for p in sorted((faces / sub).iterdir()):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            res = det.detect(load_rgb(p))
            exp = {"no_face": "0", "edge_cases": "1"}.get(sub)
            if sub == "multi_face":
                lo, hi = labels[p.name]
                exp = f"{lo}-{hi}"
            scores = ", ".join(f"{s:.3f}" for _, s, _ in res)
            print(f"| {sub} | {p.name} | {len(res)} | {exp} | {scores} |")
    zero, total, multi = [], 0, []
    for sub in ("deepface_celebs", "facerec_examples"):
        for p in sorted((faces / sub).glob("*/*")):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            total += 1
            n = len(det.detect(load_rgb(p)))
            if n == 0:
                zero.append(str(p.relative_to(faces)))
            elif n > 1:
                multi.append(f"{p.relative_to(faces)} ({n})")
    print(f"\nsingle-identity photos: {total}; zero faces: {len(zero)} {zero}; "
          f"more than one face: {len(multi)} {multi}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", type=Path, help="images to run detect() on (default: survey --faces)")
    ap.add_argument("--models", type=Path, default=MODELS, help="folder with mtcnn_{pnet,rnet,onet}.onnx")
    ap.add_argument("--faces", type=Path, default=FACES, help="photo folder for the survey")
    ap.add_argument("--min-face", type=int, default=40, help="minimum face size in pixels")
    args = ap.parse_args()
    det = MTCNN(args.models, min_face=args.min_face)
    if not args.images:
        survey(det, args.faces)
    for p in args.images:
        for box, score, pts in det.detect(load_rgb(p)):
            print(p, np.round(box, 2).tolist(), round(score, 4), np.round(pts, 2).tolist())


if __name__ == "__main__":
    main()
