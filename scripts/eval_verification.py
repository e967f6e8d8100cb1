#!/usr/bin/env python3
"""Verification accuracy of a face pipeline from its embeddings.

Reads JSON lines as printed by `facegate embed` (or by scripts/dlib_reference.py, same format),
takes each photo's main face (the largest, i.e. first; or the one nearest --face-near), and scores same/different decisions:
  - on the labelled pairs of a pairs.csv (image_a, image_b, same_identity), and/or
  - on every pair of photos of a DIR/<person>/<photo> tree, and/or
  - on an LFW-protocol pairs.txt (--lfw-pairs): 10-fold accuracy, each fold scored at the
    threshold that is best on the other 9 folds (mean and standard deviation over the folds).
A photo where no face was found makes each of its pairs a wrong answer (it cannot be verified).
Prints the accuracy at the given threshold and the best accuracy over all thresholds.

Distances are Euclidean, or cosine (1 - cosine similarity) with --metric cosine, as the manifest's
`metric` says for the embedder that made the file.

Usage: eval_verification.py EMBEDDINGS.jsonl --root DIR [--pairs pairs.csv | --lfw-pairs pairs.txt]
       [--threshold 0.6] [--metric euclidean|cosine] [--json]
"""

import argparse
import csv
import itertools
import json
import math
import sys
from pathlib import Path


def load(path, root, near=None):
    """Main-face embedding per photo, keyed by the path relative to root: the first (largest) face,
    or with `near` = (x, y) the face whose box centre is nearest that pixel."""
    out = {}
    for line in open(path):
        rec = json.loads(line)
        rel = str(Path(rec["path"]).resolve().relative_to(Path(root).resolve()))
        faces = rec.get("faces") or []
        if near and faces:
            faces = sorted(faces, key=lambda f: math.hypot(f["box"][0] + f["box"][2] / 2 - near[0],
                                                           f["box"][1] + f["box"][3] / 2 - near[1]))
        out[rel] = faces[0]["embedding"] if faces else None
    return out


def dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def cosine_dist(a, b):
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 1.0
    return 1.0 - sum(x * y for x, y in zip(a, b)) / (na * nb)


METRICS = {"euclidean": dist, "cosine": cosine_dist}


def score(pairs, emb, threshold, metric=dist):
    """(accuracy at threshold, best accuracy, best threshold, details)."""
    scored, missing = [], 0
    for a, b, same in pairs:
        if emb.get(a) is None or emb.get(b) is None:
            missing += 1
            continue
        scored.append((metric(emb[a], emb[b]), same))
    n = len(pairs)
    correct = sum((d <= threshold) == s for d, s in scored)
    # Sweep every midpoint between consecutive distances for the best threshold.
    ds = sorted(d for d, _ in scored)
    cands = [0.0] + [(x + y) / 2 for x, y in zip(ds, ds[1:])] + [ds[-1] + 1 if ds else 1.0]
    best_t, best_c = threshold, correct
    for t in cands:
        c = sum((d <= t) == s for d, s in scored)
        if c > best_c:
            best_t, best_c = t, c
    same_d = [d for d, s in scored if s]
    diff_d = [d for d, s in scored if not s]
    return {
        "pairs": n,
        "unverifiable_pairs": missing,
        "accuracy_at_threshold": correct / n if n else float("nan"),
        "threshold": threshold,
        "best_accuracy": best_c / n if n else float("nan"),
        "best_threshold": round(best_t, 4),
        "max_same_distance": max(same_d, default=float("nan")),
        "min_different_distance": min(diff_d, default=float("nan")),
    }


def lfw_pairs(path):
    """The folds of an LFW pairs.txt: [[(image_a, image_b, same)...] per fold]."""
    lines = [ln.split() for ln in open(path) if ln.strip()]
    folds, per = int(lines[0][0]), int(lines[0][1])
    img = lambda name, i: f"{name}/{name}_{int(i):04d}.jpg"  # noqa: E731
    pairs = [(img(r[0], r[1]), img(r[0], r[2]), True) if len(r) == 3 else (img(r[0], r[1]), img(r[2], r[3]), False)
             for r in lines[1:]]
    if len(pairs) != folds * 2 * per:
        raise SystemExit(f"{path}: {len(pairs)} pairs, the header says {folds} folds of 2 x {per}")
    return [pairs[k * 2 * per:(k + 1) * 2 * per] for k in range(folds)]


def ten_fold(folds, emb, metric):
    """Accuracy of each fold at the threshold best on the other folds (unverifiable pairs count wrong)."""
    accs, thresholds = [], []
    for k, test in enumerate(folds):
        train = [p for j, f in enumerate(folds) if j != k for p in f]
        t = score(train, emb, 0.0, metric)["best_threshold"]
        accs.append(score(test, emb, t, metric)["accuracy_at_threshold"])
        thresholds.append(t)
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs))
    return {"folds": len(folds), "accuracy_mean": mean, "accuracy_std": std, "fold_accuracies": accs,
            "fold_thresholds": thresholds}


def tree_pairs(root, emb):
    photos = sorted(p for p in emb if len(Path(p).parts) == 2)
    return [(a, b, Path(a).parts[0] == Path(b).parts[0]) for a, b in itertools.combinations(photos, 2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings", help="JSON lines from `facegate embed`")
    ap.add_argument("--root", required=True, help="directory the photo paths are relative to")
    ap.add_argument("--pairs", help="pairs.csv with image_a,image_b,same_identity (default: all pairs of ROOT/<person>/<photo>)")
    ap.add_argument("--lfw-pairs", help="LFW-protocol pairs.txt (10 folds): adds the 10-fold accuracy")
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--metric", choices=sorted(METRICS), default="euclidean",
                    help="distance the embedder's manifest entry names (default: euclidean)")
    ap.add_argument("--face-near", metavar="X,Y",
                    help="take the face whose box centre is nearest this pixel instead of the largest "
                         "(LFW labels the face at the centre of its 250x250 photos: 125,125)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    near = tuple(float(v) for v in args.face_near.split(",")) if args.face_near else None
    emb = load(args.embeddings, args.root, near)
    metric = METRICS[args.metric]
    folds = lfw_pairs(args.lfw_pairs) if args.lfw_pairs else None
    if args.pairs:
        with open(args.pairs) as f:
            pairs = [(r["image_a"], r["image_b"], r["same_identity"] == "1") for r in csv.DictReader(f)]
    elif folds:
        pairs = [p for f in folds for p in f]
    else:
        pairs = tree_pairs(args.root, emb)
    res = score(pairs, emb, args.threshold, metric)
    res["metric"] = args.metric
    if folds:
        res["ten_fold"] = ten_fold(folds, emb, metric)
    res["photos_without_face"] = sorted(k for k, v in emb.items() if v is None)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
    else:
        for k, v in res.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
