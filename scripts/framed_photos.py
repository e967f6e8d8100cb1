#!/usr/bin/env python3
"""Makes LFW-like 250x250 photos or 640x480 door-camera frames from the fixture photos: each the
square (or 4:3 frame) around the face found by face_recognition (dlib HOG), the face taking a
fixed share of the height, resized with Lanczos. Deterministic: same photos, same bytes.

Used by scripts/bench_vs_reference --small (photo sizes face_recognition is fastest at) and for
door-frame timing. Runs in the reference venv (scripts/ref_venv.sh).

Usage: framed_photos.py --out DIR [--size 250x250] [--face 0.42] PHOTO...
"""
import argparse
from pathlib import Path

import face_recognition
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", default="250x250", help="WxH of the output")
    ap.add_argument("--face", type=float, default=0.42, help="HOG face box height / output height")
    ap.add_argument("photos", nargs="+", type=Path)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    a.out.mkdir(parents=True, exist_ok=True)
    for p in a.photos:
        img = face_recognition.load_image_file(p)
        boxes = face_recognition.face_locations(img)
        if not boxes:
            continue
        top, right, bottom, left = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        cx, cy = (left + right) / 2, (top + bottom) / 2
        ch = (bottom - top) / a.face
        cw = ch * w / h
        box = (round(cx - cw / 2), round(cy - ch / 2), round(cx + cw / 2), round(cy + ch / 2))
        # outside the photo is black, as a crop past the edge
        Image.fromarray(img).crop(box).resize((w, h), Image.LANCZOS).save(a.out / (p.stem + ".png"))


if __name__ == "__main__":
    main()
