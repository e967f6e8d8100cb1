#!/usr/bin/env python3
"""Fetch the real face photos the tests use, from registry packages pinned by version and sha256.

The photos come from two PyPI packages (never from a model or data hub):
  - face_recognition==1.3.0 (source distribution, MIT): Obama x3, Biden, two partial faces, an RGBA PNG;
  - scikit-image==0.26.0 (wheel, BSD-3; the images are CC0/public domain): astronaut, coffee, cat, rocket.
Every archive and every extracted file is checked against the sha256 below. Files already present
with the right checksum are not fetched again, so the cache survives between runs.

Usage: scripts/fetch_fixtures.py [--dest DIR]   (default: $FACEGATE_FIXTURES or ~/.cache/facegate/fixtures)
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGES = [
    {
        "spec": "face-recognition==1.3.0",
        "file": "face_recognition-1.3.0.tar.gz",
        "sha256": "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        "pip": ["--no-binary", ":all:"],
        "members": {
            "face_recognition-1.3.0/tests/test_images/obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
            "face_recognition-1.3.0/tests/test_images/obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
            "face_recognition-1.3.0/tests/test_images/obama3.jpg": "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
            "face_recognition-1.3.0/tests/test_images/biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
            "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg": "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
            "face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg": "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
            "face_recognition-1.3.0/tests/test_images/32bit.png": "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627",
        },
    },
    {
        "spec": "scikit-image==0.26.0",
        "file": "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "sha256": "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        # Pin the exact wheel whatever the host: only its data files are used.
        "pip": ["--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp",
                "--abi", "cp311", "--platform", "manylinux_2_28_x86_64"],
        "members": {
            "skimage/data/astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            "skimage/data/coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
            "skimage/data/chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
            "skimage/data/rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        },
    },
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def have(dest: Path, pkg: dict) -> bool:
    return all((dest / Path(m).name).is_file() and sha256(dest / Path(m).name) == s
               for m, s in pkg["members"].items())


def fetch(dest: Path, pkg: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp,
               *pkg["pip"], pkg["spec"]]
        subprocess.run(cmd, check=True)
        archive = Path(tmp) / pkg["file"]
        if not archive.is_file():
            sys.exit(f"fetch_fixtures: pip did not produce {pkg['file']} for {pkg['spec']}")
        if sha256(archive) != pkg["sha256"]:
            sys.exit(f"fetch_fixtures: {pkg['file']} has sha256 {sha256(archive)}, expected {pkg['sha256']}")
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                read = lambda m: tar.extractfile(m).read()  # noqa: E731
                blobs = {m: read(m) for m in pkg["members"]}
        else:
            with zipfile.ZipFile(archive) as z:
                blobs = {m: z.read(m) for m in pkg["members"]}
    for member, expected in pkg["members"].items():
        data = blobs[member]
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            sys.exit(f"fetch_fixtures: {member} has sha256 {actual}, expected {expected}")
        out = dest / Path(member).name
        tmp_out = out.with_suffix(out.suffix + ".part")
        tmp_out.write_bytes(data)
        os.replace(tmp_out, out)


def main() -> None:
    default = os.environ.get("FACEGATE_FIXTURES") or str(Path.home() / ".cache/facegate/fixtures")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=default, help=f"where the photos go (default: {default})")
    args = ap.parse_args()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        if have(dest, pkg):
            print(f"fetch_fixtures: {pkg['spec']}: cached in {dest}")
        else:
            print(f"fetch_fixtures: {pkg['spec']}: downloading")
            fetch(dest, pkg)
    print(f"fetch_fixtures: {sum(len(p['members']) for p in PACKAGES)} photos ready in {dest}")


if __name__ == "__main__":
    main()
