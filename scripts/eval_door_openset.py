#!/usr/bin/env python3
"""The door's open-set question through the simulator, end to end.

N employees are enrolled from ONE photo each with `facegate import --force`, then the real daemon
(`facegate-sim run`) sees each employee (another photo of them) and each stranger for a few seconds
at a few fps, with an empty scene between people, in a shuffled order. It counts strangers let in
(any unlock during a stranger's step), employees let in within the time limit, and employees let in
under someone else's name. Everything is the product's own code: import, daemon, decision, relay.

Input: an open-set list `role,person,image` (roles enrol / genuine / impostor; image paths relative
to the list's folder), e.g. ../shared/faces/lfw_dev/openset.csv (development data: not in the repo).

    scripts/eval_door_openset.py --openset ../shared/faces/lfw_dev/openset.csv \
        --employees 100 --strangers 300 [--embedder NAME] [--models MANIFEST] [--config TOML]

Second factors (issue 26): `--factors card_and_face` gives every employee a card (`facegate
credential`) and presents it before their face; each stranger presents a random employee's card
(a stolen card). `--factors face_and_pin` gives every employee a PIN (`facegate pin set`), typed
before their face; each stranger types a random employee's PIN (a known PIN). `--visits K` shows
only K of the employees at the door (all are enrolled).
"""
import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--openset", required=True, type=Path)
    ap.add_argument("--employees", type=int, default=100)
    ap.add_argument("--strangers", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--enrol-photos", type=int, default=1,
                    help="photos enrolled per employee: the enrol photo plus K-1 of their genuine photos "
                         "(only people with K genuine photos are drawn)")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=2.0, help="time each person stands at the door")
    ap.add_argument("--gap", type=float, default=1.0, help="empty scene between two people, seconds")
    ap.add_argument("--face-px", type=int, default=160)
    ap.add_argument("--models", type=Path, help="model manifest (default: built in)")
    ap.add_argument("--embedder", help="embedder name in the manifest (default: its default)")
    ap.add_argument("--config", type=Path, help="daemon config TOML whose tables override the defaults")
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "release", help="folder with facegate and facegate-sim")
    ap.add_argument("--workdir", type=Path, help="keep the gallery, scenario and logs here")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--factors", choices=["face", "card_and_face", "face_and_pin"], default="face")
    ap.add_argument("--visits", type=int, help="employees shown at the door (default: all enrolled)")
    a = ap.parse_args()

    base = a.openset.resolve().parent
    enrol, genuine, impostor = {}, defaultdict(list), []
    with open(a.openset, newline="") as f:
        for row in csv.DictReader(f):
            path = base / row["image"]
            if row["role"] == "enrol":
                enrol[row["person"]] = path
            elif row["role"] == "genuine":
                genuine[row["person"]].append(path)
            elif row["role"] == "impostor":
                impostor.append(path)
    rng = random.Random(a.seed)
    extra = a.enrol_photos - 1
    candidates = sorted(p for p in enrol if len(genuine.get(p, [])) > extra)
    if len(candidates) < a.employees or len(impostor) < a.strangers:
        sys.exit(f"the list has {len(candidates)} enrolled people with a genuine photo and "
                 f"{len(impostor)} impostor photos; asked for {a.employees} and {a.strangers}")
    employees = rng.sample(candidates, a.employees)
    strangers = rng.sample(impostor, a.strangers)
    # Each employee's probe is drawn now, before import: which photos import refuses must not
    # change the probes drawn for the others (runs of two versions stay comparable).
    probe = {person: rng.choice(genuine[person][extra:]) for person in employees}

    work = Path(a.workdir or tempfile.mkdtemp(prefix="facegate-door-openset-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    photos = work / "enrol"
    for person in employees:
        d = photos / person
        d.mkdir(parents=True, exist_ok=True)
        # A copy, not a link: import walks real files only. Extra photos come from the genuine
        # list; the probe is then drawn from the photos left.
        for src in [enrol[person], *genuine[person][:extra]]:
            shutil.copyfile(src, d / src.name)
    gallery = work / "gallery.toml"
    if gallery.exists():
        gallery.unlink()
    model_args = []
    if a.models:
        model_args += ["--models", str(a.models.resolve())]
    if a.embedder:
        model_args += ["--embedder", a.embedder]
    imp = subprocess.run(
        [str(a.bin / "facegate"), *model_args, "--gallery", str(gallery), "import", "--force", "--json", str(photos)],
        capture_output=True, text=True)
    if imp.returncode not in (0, 1):
        sys.exit(f"facegate import failed ({imp.returncode}):\n{imp.stderr}")
    imported = json.loads(imp.stdout) if imp.stdout.strip().startswith("{") else {}

    # The id import gives each person: read them back from the gallery's list.
    lst = subprocess.run([str(a.bin / "facegate"), *model_args, "--gallery", str(gallery), "list", "--json"],
                         capture_output=True, text=True, check=True)
    people = json.loads(lst.stdout)
    id_of = {p["name"]: p["id"] for p in people}

    shown = employees if a.visits is None else employees[:a.visits]
    visits = [("employee", person, probe[person]) for person in shown if person.replace("_", " ") in id_of or person in id_of]
    missing = [p for p in employees if p not in id_of and p.replace("_", " ") not in id_of]
    # The second factor of each enrolled id: a card number or a PIN (distinct, 6 digits).
    factor_of = {}
    if a.factors != "face":
        for n, pid in enumerate(sorted(id_of.values())):
            if a.factors == "card_and_face":
                factor_of[pid] = n + 1
                cmd = ["credential", pid, "--facility", "7", "--card", str(n + 1)]
                stdin = None
            else:
                factor_of[pid] = f"{100000 + 7 * n:06d}"
                cmd = ["pin", "set", pid]
                stdin = factor_of[pid] + "\n"
            subprocess.run([str(a.bin / "facegate"), *model_args, "--gallery", str(gallery), *cmd],
                           input=stdin, capture_output=True, text=True, check=True)
    stolen = sorted(factor_of.values(), key=str)
    visits = [(r, p, path, None) for r, p, path in visits]
    visits += [("stranger", None, path, rng.choice(stolen) if stolen else None) for path in strangers]
    rng.shuffle(visits)

    config = {}
    if a.config:
        import tomllib
        config = tomllib.loads(a.config.read_text())
    rec = config.setdefault("recognition", {})
    if a.models:
        rec["models"] = str(a.models.resolve())
    if a.embedder:
        rec["embedder"] = a.embedder
    if a.factors != "face":
        config.setdefault("access", {})["factors"] = a.factors

    lines = [f'description = "open-set door: {len(employees)} employees, {len(strangers)} strangers"',
             f"fps = {a.fps}", f'gallery = "{gallery}"', "", "[config]"]
    for table, values in config.items():
        lines.append(f"{table} = {toml_inline(values)}")
    for role, person, path, theirs in visits:
        pid = person and (id_of.get(person) or id_of.get(person.replace("_", " ")))
        factor = factor_of.get(pid) if role == "employee" else theirs
        if factor is not None:
            lines += ["", "[[step]]"]
            lines += [f'present_card = {{ format = "wiegand26", facility = 7, card = {factor} }}'
                      if a.factors == "card_and_face" else f'type_pin = "{factor}#"']
        lines += ["", "[[step]]", f'show = "{path}"', f"face_px = {a.face_px}", f"seconds = {a.seconds}"]
        if role == "employee":
            lines += ['expect = "unlock"', f'person = "{pid}"', f"within = {a.seconds}"]
        else:
            lines += ['expect = "no_unlock"']
        lines += ["", "[[step]]", 'show = "blank"', f"seconds = {a.gap}"]
    scenario = work / "scenario.toml"
    scenario.write_text("\n".join(lines) + "\n")

    sim = subprocess.run([str(a.bin / "facegate-sim"), "run", str(scenario), "--quiet", "--workdir", str(work / "run")],
                         capture_output=True, text=True)
    (work / "sim.stderr").write_text(sim.stderr)
    if sim.returncode == 2:
        sys.exit(f"facegate-sim could not run the scenario:\n{sim.stderr[-3000:]}")

    # Per-step verdicts: "ok    step N (...)" / "FAIL  step N (...): ...".
    verdict = {}
    for m in re.finditer(r"^\s+(ok|FAIL)\s+step (\d+) \(([^)]*)\)(.*)$", sim.stderr, re.M):
        verdict[int(m.group(2))] = (m.group(1), m.group(4))
    emp_in = emp_wrong = emp_out = str_in = 0
    per = 3 if factor_of else 2
    for i, (role, _, _, _) in enumerate(visits):
        ok, detail = verdict.get(per * i + per - 1, ("FAIL", "no verdict"))
        if role == "employee":
            if ok == "ok":
                emp_in += 1
            elif "unlocked for" in detail and "only" not in detail:
                emp_wrong += 1
            else:
                emp_out += 1
        elif ok == "FAIL":
            str_in += 1
    n_emp = sum(1 for v in visits if v[0] == "employee")
    employees = shown
    frame_ms = re.search(r"([\d.]+) ms per frame of processing", sim.stderr)
    result = {
        "employees": n_emp,
        "employees_not_enrolled": len(missing),
        "strangers": len(strangers),
        "strangers_let_in": str_in,
        "employees_let_in": emp_in,
        "employees_let_in_as_someone_else": emp_wrong,
        "employees_refused": emp_out,
        "seconds_per_person": a.seconds,
        "fps": a.fps,
        "ms_per_frame": float(frame_ms.group(1)) if frame_ms else None,
        "import": imported.get("summary", imported) if isinstance(imported, dict) else None,
        "workdir": str(work),
    }
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"strangers let in: {str_in} of {len(strangers)} ({100 * str_in / max(1, len(strangers)):.2f}%)")
        # An employee whose photo import refused is a refused employee too.
        total = len(employees)
        print(f"employees let in within {a.seconds} s: {emp_in} of {total} ({100 * emp_in / max(1, total):.1f}%); "
              f"as someone else: {emp_wrong}; refused at the door: {emp_out}; photo refused by import: {len(missing)}")
        print(f"processing: {result['ms_per_frame']} ms per frame; details in {work}")
    return 0


def toml_inline(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_inline(x) for x in v) + "]"
    return json.dumps(str(v))


if __name__ == "__main__":
    sys.exit(main())
