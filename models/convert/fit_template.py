#!/usr/bin/env python3
"""Fit the 5-point MTCNN alignment template in dlib's 150x150 face-chip coordinates.

dlib's ResNet face embedder was trained on chips from the 5-point shape predictor +
get_face_chip(size=150, padding=0.25). facegate aligns with MTCNN's 5 points instead, so it needs where
MTCNN's points land, on average, inside dlib's chip. For every photo:
  1. dlib_chips.FaceChipper (HOG detector, 1 upsample, 5-point predictor, get_face_chip_details(150, 0.25))
     and dlib_chips.image_to_chip_matrix, the image->chip affine (dlib's get_mapping_to_chip), checked per
     face with dlib_chips.check_mapping against dlib's own resampling;
  2. MTCNN (mtcnn_ref.py, min face 40) on the same pixels; the face whose box best overlaps dlib's
     detector box (IoU >= 0.3) gives 5 landmarks (0-based pixels, facenet-pytorch convention), mapped into
     the chip.
Per point, faces further than 3 robust sigmas (1.4826*MAD of the distance to the median) are dropped and
the rest averaged. Chip coordinates have pixel centres at integers, (0,0) = top-left chip pixel.
"""
import argparse
from pathlib import Path

import numpy as np

import dlib_assets
from dlib_chips import FaceChipper, check_mapping, image_to_chip_matrix, load_rgb
from mtcnn_ref import FACES, MODELS, MTCNN

NAMES = ("left eye", "right eye", "nose", "left mouth", "right mouth")


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def robust_mean(p: np.ndarray):
    """Mean of points within 3 robust sigmas of the median; returns (mean, std, kept mask)."""
    med = np.median(p, axis=0)
    d = np.linalg.norm(p - med, axis=1)
    sigma = 1.4826 * np.median(np.abs(d - np.median(d))) + 1e-9
    keep = d <= np.median(d) + 3 * sigma
    return p[keep].mean(axis=0), p[keep].std(axis=0), keep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, default=FACES, help="photo folder")
    ap.add_argument("--sets", nargs="+", default=["deepface_celebs", "facerec_examples", "multi_face"],
                    help="sub-folders of --faces to use")
    ap.add_argument("--models", type=Path, default=MODELS, help="folder with mtcnn_*.onnx")
    ap.add_argument("--sdist", type=Path, default=dlib_assets.DEFAULT_SDIST,
                    help="face_recognition_models-0.3.0.tar.gz (sha256-checked)")
    ap.add_argument("--work-dir", type=Path, default=dlib_assets.DEFAULT_WORK_DIR,
                    help="where the shape predictor .dat is extracted")
    args = ap.parse_args()

    dat = dlib_assets.extract(args.sdist, args.work_dir, names=(dlib_assets.SHAPE5_DAT,))
    chipper = FaceChipper(dat[dlib_assets.SHAPE5_DAT])
    mtcnn = MTCNN(args.models, min_face=40)
    pts, map_err, unmatched, n_dlib = [], [], [], 0
    paths = sorted(p for s in args.sets for p in (args.faces / s).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for path in paths:
        img = load_rgb(path)
        found = mtcnn.detect(img)
        for face in chipper.faces(img):
            n_dlib += 1
            err = check_mapping(face.details, img.shape)
            if err is not None:
                map_err.append(err)
            r = face.box
            box = (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
            best = max(found, key=lambda f: iou(f[0], box), default=None)
            if best is None or iou(best[0], box) < 0.3:
                unmatched.append(str(path.relative_to(args.faces)))
                continue
            a = image_to_chip_matrix(face.details)
            pts.append(best[2] @ a[:, :2].T + a[:, 2])
    pts = np.array(pts)  # faces x 5 x 2
    print(f"photos {len(paths)}; dlib faces {n_dlib}; matched to MTCNN {len(pts)}; unmatched {unmatched}")
    print(f"image->chip map vs dlib's resampling: max error {max(map_err):.3f} chip px over {len(map_err)} faces\n")
    print("| point | x | y | std x | std y | faces kept |\n|---|---|---|---|---|---|")
    template = []
    for i, name in enumerate(NAMES):
        mean, std, keep = robust_mean(pts[:, i])
        template.append(mean)
        print(f"| {name} | {mean[0]:.2f} | {mean[1]:.2f} | {std[0]:.2f} | {std[1]:.2f} | {keep.sum()}/{len(keep)} |")
    print("\ntemplate (robust mean):", np.round(np.array(template), 2).tolist())
    print("median:                ", np.round(np.median(pts, axis=0), 2).tolist())


if __name__ == "__main__":
    main()
