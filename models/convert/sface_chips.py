"""112x112 ArcFace-template face chips for SFace, from the landmarks facegate itself finds.

Landmarks come from the project's own CLI (`facegate embed PHOTOS...`, MTCNN, 5 points per face),
so calibration and verification see faces located the way the product locates them. Each face is
warped with a least-squares similarity transform (cv2.estimateAffinePartial2D, every point kept)
onto the ArcFace template and cut with cv2.warpAffine (bilinear, black border), as OpenCV's
FaceRecognizerSF.alignCrop does, after the same integer area pre-shrink facegate's aligner applies
to large faces.
"""
import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FACES = REPO_ROOT.parent / "shared" / "faces"
# The 5-point template SFace was trained with (insightface's ArcFace template), 112x112 pixels.
ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                    [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
SIZE = 112


def default_facegate():
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO_ROOT / "target"))
    return Path(target) / "release" / "facegate"


def landmarks(facegate, paths):
    """[(photo path, [5x2 landmarks per face])] for `paths` (files or folders), as `facegate embed` sees them."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise SystemExit(f"not found: {missing} (use --faces)")
    out = subprocess.run([str(facegate), "embed", *map(str, paths)], check=False, capture_output=True, text=True)
    if out.returncode not in (0, 2):  # 2: some photo unreadable, reported per line
        raise SystemExit(f"facegate embed failed ({out.returncode}): {out.stderr[-2000:]}")
    recs = []
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        faces = [np.array(f["landmarks"], dtype=np.float32) for f in rec.get("faces") or []]
        recs.append((Path(rec["path"]), faces))
    return recs


def chip(bgr, lm):
    """The aligned 112x112 BGR chip of the face with landmarks `lm` (image pixels)."""
    # A reprojection threshold far above any residual keeps all 5 points: least squares over all.
    m, _ = cv2.estimateAffinePartial2D(lm, ARCFACE, method=cv2.RANSAC, ransacReprojThreshold=1e4)
    if m is None:
        raise ValueError("degenerate landmarks")
    # As facegate's aligner (firmware/src/vision/align.rs): when the face is 2x or more the chip's
    # size, first average k x k pixel blocks (integer k), so bilinear sampling does not alias.
    k = int(np.floor(1.0 / np.hypot(m[0, 0], m[1, 0])))
    if k >= 2:
        h, w = (bgr.shape[0] // k) * k, (bgr.shape[1] // k) * k
        bgr = cv2.resize(bgr[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
        # Shrunk pixel j averages image pixels jk..jk+k-1: its centre is image coordinate jk + (k-1)/2.
        m = m @ np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]])
    return cv2.warpAffine(bgr, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def load_bgr(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation, like facegate's decoder
    if img is None:
        raise ValueError(f"unreadable image {path}")
    return img


def blob(chips_bgr):
    """Network input as OpenCV's FaceRecognizerSF feeds it: RGB 0..255 float32 NCHW, no scaling."""
    return cv2.dnn.blobFromImages(list(chips_bgr), 1.0, (SIZE, SIZE), (0, 0, 0), swapRB=True, crop=False)


def photo_chips(recs):
    """[(photo path, face index, chip)] for every face of every photo."""
    out = []
    for path, faces in recs:
        if not faces:
            continue
        img = load_bgr(path)
        out += [(path, k, chip(img, lm)) for k, lm in enumerate(faces)]
    return out


def identity(path, faces_dir):
    """The person of <set>/<identity>/<photo>."""
    parts = Path(path).resolve().relative_to(Path(faces_dir).resolve()).parts
    return parts[1] if len(parts) == 3 else None
