#!/usr/bin/env python3
"""Verification accuracy of a face pipeline from its embeddings.

Reads JSON lines as printed by `facegate embed` (or by scripts/dlib_reference.py, same format),
takes each photo's main (largest, i.e. first) face, and scores same/different decisions:
  - on the labelled pairs of a pairs.csv (image_a, image_b, same_identity), and/or
  - on every pair of photos of a DIR/<person>/<photo> tree.
A photo where no face was found makes each of its pairs a wrong answer (it cannot be verified).
Prints the accuracy at the given threshold and the best accuracy over all thresholds.

Usage: eval_verification.py EMBEDDINGS.jsonl --root DIR [--pairs pairs.csv] [--threshold 0.6] [--json]
"""

import argparse
import csv
import itertools
import json
import math
import sys
from pathlib import Path


def load(path, root):
    """Main-face embedding per photo, keyed by the path relative to root."""
    out = {}
    for line in open(path):
        rec = json.loads(line)
        rel = str(Path(rec["path"]).resolve().relative_to(Path(root).resolve()))
        faces = rec.get("faces") or []
        out[rel] = faces[0]["embedding"] if faces else None
    return out


def dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def score(pairs, emb, threshold):
    """(accuracy at threshold, best accuracy, best threshold, details)."""
    scored, missing = [], 0
    for a, b, same in pairs:
        if emb.get(a) is None or emb.get(b) is None:
            missing += 1
            continue
        scored.append((dist(emb[a], emb[b]), same))
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


def tree_pairs(root, emb):
    photos = sorted(p for p in emb if len(Path(p).parts) == 2)
    return [(a, b, Path(a).parts[0] == Path(b).parts[0]) for a, b in itertools.combinations(photos, 2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings", help="JSON lines from `facegate embed`")
    ap.add_argument("--root", required=True, help="directory the photo paths are relative to")
    ap.add_argument("--pairs", help="pairs.csv with image_a,image_b,same_identity (default: all pairs of ROOT/<person>/<photo>)")
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    emb = load(args.embeddings, args.root)
    if args.pairs:
        with open(args.pairs) as f:
            pairs = [(r["image_a"], r["image_b"], r["same_identity"] == "1") for r in csv.DictReader(f)]
    else:
        pairs = tree_pairs(args.root, emb)
    res = score(pairs, emb, args.threshold)
    res["photos_without_face"] = sorted(k for k, v in emb.items() if v is None)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
    else:
        for k, v in res.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
