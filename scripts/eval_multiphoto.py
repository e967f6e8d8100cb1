#!/usr/bin/env python3
"""Several enrolment photos per person: mean template vs each photo, on an open-set list.

Measures, with raw nearest neighbour and the door's acceptance rule (nearest person within the
threshold, second-nearest *person* at least `--margin` farther), FNIR (employees not accepted as
themselves) and FPIR (strangers accepted as anybody) for 1, 2 and 3 enrolment photos per person,
two ways of using several photos:

  mean  one template per person: the unit-normalised mean of their unit embeddings;
  each  every photo its own row, a person's distance the nearest of their rows.

Input: an `openset.csv` (role,person,image; lfw_dev's) and the embeddings of its photos as
`facegate embed DIR > cache.jsonl` prints them (embed once, then run this as often as needed):

  target/release/facegate embed ../shared/faces/lfw_dev > target/tmp/lfw_dev_embed.jsonl
  python3 scripts/eval_multiphoto.py ../shared/faces/lfw_dev/openset.csv target/tmp/lfw_dev_embed.jsonl

Protocol (seeded, --draws draws pooled): people of the enrol role with at least 4 photos (3 to
enrol, 1 probe) form the pool; each draw shuffles every person's photos, the last one is the probe
and the first k are enrolled, so the probes are the same for k = 1, 2, 3. Galleries: 100 people
drawn from the pool, the whole pool, and every enrol-role person (those with fewer photos enrolled
with min(k, photos - 1): a site where not everyone gave k photos). Strangers: the impostor-role
photos (people never enrolled). Needs numpy.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

# The door's thresholds: the model's 0.50 and the manifest's per-size points (models/manifest.toml).
THRESHOLDS = [0.50, 0.49, 0.465, 0.445, 0.43, 0.405, 0.385]


def load_embeddings(path, root):
    """Image path (relative to the csv's folder) -> unit embedding of its largest face."""
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            faces = rec.get("faces") or []
            if not faces:
                continue
            face = max(faces, key=lambda x: x["box"][2] * x["box"][3])
            v = np.asarray(face["embedding"], dtype=np.float64)
            n = np.linalg.norm(v)
            if not np.isfinite(n) or n == 0:
                continue
            out[os.path.relpath(rec["path"], root)] = v / n
    return out


def templates(rows_per_person, mode):
    """Per person: a matrix of rows (mean: one row)."""
    out = []
    for rows in rows_per_person:
        m = np.stack(rows)
        if mode == "mean":
            t = m.mean(axis=0)
            m = (t / np.linalg.norm(t))[None, :]
        out.append(m)
    return out


def person_distances(probes, tmpl):
    """Cosine distance of each probe to each person (nearest of their rows)."""
    rows = np.concatenate(tmpl)
    owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(tmpl)])
    d = 1.0 - probes @ rows.T
    out = np.full((len(probes), len(tmpl)), np.inf)
    for i in range(len(tmpl)):
        out[:, i] = d[:, owner == i].min(axis=1)
    return out


def accepted(dist, thresholds, margin):
    """(nearest person, accepted at each threshold) per probe."""
    order = np.argsort(dist, axis=1)
    first = order[:, 0]
    d1 = dist[np.arange(len(dist)), first]
    d2 = dist[np.arange(len(dist)), order[:, 1]] if dist.shape[1] > 1 else np.full(len(dist), np.inf)
    ok_margin = (d2 - d1) >= margin
    return first, np.stack([(d1 <= t) & ok_margin for t in thresholds], axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("embeddings")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ap.add_argument("--points", metavar="MANIFEST",
                    help="also print each operating point of the manifest's default embedder with "
                         "fnir_2 and fnir_3 (the rule kept, 'each', in the pool gallery)")
    a = ap.parse_args()

    global THRESHOLDS
    pts = []
    if a.points:
        import tomllib
        with open(a.points, "rb") as f:
            man = tomllib.load(f)
        pts = man["embedders"][man["default_embedder"]].get("operating_points", [])
        # Every point's threshold is measured, whatever the manifest says now.
        THRESHOLDS = sorted(set(THRESHOLDS) | {p["threshold"] for p in pts}, reverse=True)

    root = os.path.dirname(os.path.abspath(a.csv))
    emb = load_embeddings(a.embeddings, root)
    photos, strangers, missing = {}, [], 0
    with open(a.csv) as f:
        for r in csv.DictReader(f):
            v = emb.get(os.path.normpath(r["image"]))
            if v is None:
                missing += 1
                continue
            if r["role"] == "impostor":
                strangers.append(v)
            else:
                photos.setdefault(r["person"], []).append(v)
    strangers = np.stack(strangers)
    people = sorted(p for p, v in photos.items() if len(v) >= 2)
    pool = [p for p in people if len(photos[p]) >= 4]
    print(
        f"{len(people)} people with 2+ photos, {len(pool)} with 4+ (the pool), {len(strangers)} "
        f"stranger photos, {missing} photos without a face left out; {a.draws} draws, seed {a.seed}, "
        f"margin {a.margin}",
        file=sys.stderr,
    )

    rng = np.random.default_rng(a.seed)
    # counts[(gallery, k, mode)] = [genuine, missed per threshold, strangers, accepted per threshold]
    counts = {}
    # det[(k, mode)] = (genuine own distances, stranger-person distances) in the pool gallery
    det = {}
    for _ in range(a.draws):
        order = {p: rng.permutation(len(photos[p])) for p in people}
        small = list(rng.choice(len(pool), size=min(100, len(pool)), replace=False))
        galleries = {
            "100": [pool[i] for i in sorted(small)],
            f"{len(pool)}": pool,
            f"{len(people)} mixed": people,
        }
        for gname, members in galleries.items():
            probes = np.stack([photos[p][order[p][-1]] for p in members])
            for k in (1, 2, 3):
                enrol = [[photos[p][i] for i in order[p][: min(k, len(photos[p]) - 1)]] for p in members]
                for mode in ("mean", "each"):
                    tmpl = templates(enrol, mode)
                    first, acc = accepted(person_distances(probes, tmpl), THRESHOLDS, a.margin)
                    own = first == np.arange(len(members))
                    miss = (~(acc & own[:, None])).sum(axis=0)
                    sd = person_distances(strangers, tmpl)
                    if gname == f"{len(pool)}":
                        own_d = person_distances(probes, tmpl)[np.arange(len(members)), np.arange(len(members))]
                        dg, ds = det.setdefault((k, mode), ([], []))
                        dg.append(own_d)
                        ds.append(sd.ravel())
                    _, sacc = accepted(sd, THRESHOLDS, a.margin)
                    c = counts.setdefault((gname, k, mode), [0, np.zeros(len(THRESHOLDS)), 0, np.zeros(len(THRESHOLDS)), 0, np.zeros(len(THRESHOLDS))])
                    c[0] += len(members)
                    c[1] += miss
                    c[2] += len(strangers)
                    c[3] += sacc.sum(axis=0)
                    # Stranger-person pairs within the threshold: the per-person false match
                    # rate that FPIR at any size follows, far better resolved than FPIR itself.
                    c[4] += sd.size
                    c[5] += np.array([(sd <= t).sum() for t in THRESHOLDS])

    rows = []
    for (g, k, mode), c in counts.items():
        for j, t in enumerate(THRESHOLDS):
            fmr = c[5][j] / c[4]
            rows.append({"gallery": g, "photos": k, "mode": mode, "threshold": t,
                         "fnir": c[1][j] / c[0], "fpir": c[3][j] / c[2], "fmr": fmr,
                         "fpir_1000": 1 - (1 - fmr) ** 1000,
                         "genuine": c[0], "strangers": c[2]})
    if a.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    cols = [(1, "each"), (2, "mean"), (2, "each"), (3, "mean"), (3, "each")]
    head = "| gallery | threshold | " + " | ".join(f"{k} {'photo' if k == 1 else m}" for k, m in cols) + " |"
    sep = "|---" * (len(cols) + 2) + "|"
    at = {(r["gallery"], r["photos"], r["mode"], r["threshold"]): r for r in rows}
    galleries = list(dict.fromkeys(r["gallery"] for r in rows))
    for title, cell in [
        ("FNIR (employees not accepted as themselves, per probe photo)",
         lambda r: f"{100 * r['fnir']:.1f}%"),
        ("FPIR measured (strangers accepted as anybody) / per-person stranger match rate FMR (1e-4) / "
         "FPIR expected at 1,000 people = 1 - (1 - FMR)^1000 (margin left out)",
         lambda r: f"{100 * r['fpir']:.2f}% / {1e4 * r['fmr']:.2f} / {100 * r['fpir_1000']:.1f}%"),
    ]:
        print(f"\n{title}\n\n{head}\n{sep}")
        for g in galleries:
            for t in THRESHOLDS:
                print(f"| {g} | {t} | " + " | ".join(cell(at[(g, k, m, t)]) for k, m in cols) + " |")
    # The fair comparison: each rule at the threshold that gives it the same stranger match
    # rate (a template rule that pulls genuine faces closer may pull strangers closer too).
    fmrs = [1e-3, 1e-4, 1e-5, 3e-6]
    print(f"\nAt equal per-person stranger match rate (pool gallery of {len(pool)}, no margin): "
          "threshold giving that FMR, and the share of genuine probes farther than it (FNMR)\n")
    print("| FMR | " + " | ".join(f"{k} {'photo' if k == 1 else m}" for k, m in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for f in fmrs:
        cells = []
        for k, m in cols:
            dg, ds = det[(k, m)]
            dg, ds = np.concatenate(dg), np.sort(np.concatenate(ds))
            t = ds[max(int(f * len(ds)) - 1, 0)]
            cells.append(f"t {t:.3f}: {100 * np.mean(dg > t):.1f}%")
        print(f"| {f:g} | " + " | ".join(cells) + " |")
    print(f"({len(np.concatenate(det[(1, 'each')][1]))} stranger-person pairs per rule)")
    if pts:
        pool_g = f"{len(pool)}"
        print("\noperating_points with the expected FNIR for 2 and 3 photos per person: the point's own "
              "fnir times the measured ratio (k photos / 1 photo, 'each', same probes) at its threshold\n")
        for p in pts:
            one = at[(pool_g, 1, "each", p["threshold"])]["fnir"]
            extra = "".join(
                f", fnir_{k} = {p['fnir'] * at[(pool_g, k, 'each', p['threshold'])]['fnir'] / one:.6f}"
                for k in (2, 3))
            print(f"    {{ gallery = {p['gallery']}, threshold = {p['threshold']}, fpir = {p['fpir']:.6f}, "
                  f"fnir = {p['fnir']:.6f}{extra} }},")
    first = at[(galleries[0], 1, "each", THRESHOLDS[0])]
    print(f"\nper cell, pooled over the draws: {first['genuine']} genuine probes at gallery "
          f"{galleries[0]}, {first['strangers']} stranger probes")


if __name__ == "__main__":
    main()
