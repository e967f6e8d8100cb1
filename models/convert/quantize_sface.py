"""Static int8 quantisation of sface_2021dec_f32.onnx, and its drift on held-out faces.

Photos of --faces/{deepface_celebs,facerec_examples} where `facegate embed` finds at least one face
are sorted by path; every 4th (index % 4 == 3) is held out, the rest calibrate (every face chip
of them). The split, with each photo's sha256, goes to calibration-set-sface.txt. lfw_dev, the
evaluation set, is never used here.

Quantisation as for dlib (quantize_dlib.py): onnxruntime quant_pre_process, then quantize_static
in QOperator format, int8 activations and weights, per-tensor, Conv only (QLinearConv),
99.99-percentile calibration; except that the 13 depthwise 3x3 convs stay f32 unless
--quantize-depthwise (measured: in int8 they make tract's embed ~3x slower on x86-64 and account
for most of the drift; they hold 3% of the 574 M multiply-adds). Only standard ONNX ops may remain
(tract cannot run com.microsoft ones), which the script asserts.

Measured on held-out chips: int8 vs f32 drift of the L2-normalised embeddings (L2, cosine), and
same/different-person cosine distances with the verdicts at the manifest threshold.
With --report the figures are appended to VERIFY-sface.md.
"""
import argparse
import importlib.metadata
import itertools
import shlex
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sface_chips  # noqa: E402
import sface_to_onnx  # noqa: E402

SETS = ("deepface_celebs", "facerec_examples")
THRESHOLD = 0.637  # cosine distance; 1 - OpenCV's cosine-similarity threshold 0.363 for SFace
ALLOWED_OPS = {"QLinearConv", "QuantizeLinear", "DequantizeLinear", "Conv", "PRelu", "Sub", "Mul", "Flatten", "Gemm"}


class ChipReader(CalibrationDataReader):
    def __init__(self, x):
        self.it = iter([x[i:i + 1] for i in range(len(x))])

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {"input": x}


def embed_ort(model, x):
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["embedding"], {"input": x[i:i + 1]})[0] for i in range(len(x))]).astype(np.float64)


def embed_tract(model, x):
    import tract
    plan = tract.onnx().load(str(model)).into_model().into_runnable()
    return np.concatenate([plan.run([x[i:i + 1]])[0].to_numpy() for i in range(len(x))]).astype(np.float64)


def unit(e):
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def drift(ref, got):
    a, b = unit(ref), unit(got)
    dist = np.linalg.norm(a - b, axis=1)
    cos = np.sum(a * b, axis=1)
    return f"normalised embeddings: max L2 {dist.max():.4f}, mean L2 {dist.mean():.4f}, min cosine {cos.min():.5f}"


def pair_line(emb, labels):
    e = unit(emb)
    same, diff = [], []
    for i, j in itertools.combinations(range(len(labels)), 2):
        d = 1.0 - float(e[i] @ e[j])
        (same if labels[i] == labels[j] else diff).append(d)
    same, diff = np.array(same), np.array(diff)
    fr, fa = int((same >= THRESHOLD).sum()), int((diff < THRESHOLD).sum())
    return (f"{len(same) + len(diff)} pairs ({len(same)} same, {len(diff)} different); same-person cosine distance "
            f"{same.min():.4f}..{same.max():.4f}, different-person {diff.min():.4f}..{diff.max():.4f}; at {THRESHOLD}: "
            f"accuracy {1 - (fr + fa) / (len(same) + len(diff)):.4f} ({fr} false rejects, {fa} false accepts)")


def depthwise(model_path):
    """Names of the grouped (depthwise) convs."""
    m = onnx.load(str(model_path))
    return [n.name for n in m.graph.node
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, default=sface_chips.DEFAULT_FACES)
    ap.add_argument("--facegate", type=Path, default=sface_chips.default_facegate(), help="facegate CLI binary")
    ap.add_argument("--out-dir", type=Path, default=sface_to_onnx.REPO_ROOT / "models",
                    help="holds sface_2021dec_f32.onnx; receives sface_2021dec_int8.onnx and calibration-set-sface.txt")
    ap.add_argument("--tract", action="store_true", help="also run both models in tract's Python binding")
    ap.add_argument("--quantize-depthwise", action="store_true",
                    help="also make the 3x3 depthwise convs (group > 1) QLinearConv (by default they stay f32: "
                         "tract runs them ~3x slower in int8 and they add most of the drift)")
    ap.add_argument("--out-name", default="sface_2021dec_int8.onnx", help="int8 file name in --out-dir")
    ap.add_argument("--report", type=Path, help="append the figures to this markdown file (models/VERIFY-sface.md)")
    args = ap.parse_args()

    f32 = args.out_dir / sface_to_onnx.OUT_NAME
    int8 = args.out_dir / args.out_name
    recs = sorted((r for r in sface_chips.landmarks(args.facegate, [args.faces / s for s in SETS]) if r[1]),
                  key=lambda r: str(r[0]))
    held = [r for k, r in enumerate(recs) if k % 4 == 3]
    calib = [r for k, r in enumerate(recs) if k % 4 != 3]
    split = args.out_dir / "calibration-set-sface.txt"
    with open(split.with_suffix(".tmp"), "w") as f:
        f.write("# sface_2021dec_int8.onnx calibration split (models/convert/quantize_sface.py).\n"
                f"# Photos of shared/faces/{{{','.join(SETS)}}} with >= 1 face found by `facegate embed`,\n"
                "# sorted by path; every 4th held out.\n"
                "# <role> <sha256> <faces> <path relative to shared/faces>\n")
        for k, (path, faces) in enumerate(recs):
            rel = Path(path).resolve().relative_to(args.faces.resolve())
            f.write(f"{'heldout' if k % 4 == 3 else 'calib'} {sface_to_onnx.sha256_file(path)} {len(faces)} {rel}\n")
    split.with_suffix(".tmp").replace(split)

    calib_x = sface_chips.blob([c for _, _, c in sface_chips.photo_chips(calib)])
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(f32), str(pre))
        quantize_static(
            str(pre), str(Path(tmp) / "q.onnx"), ChipReader(calib_x),
            quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            per_channel=False, op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.99}, nodes_to_exclude=[] if args.quantize_depthwise else depthwise(f32))
        model = onnx.load(str(Path(tmp) / "q.onnx"))
    # As for dlib: drop quant_pre_process's value_info (tract 0.23 fails to analyse with it once the
    # input is fixed) and opsets of domains no node uses.
    del model.graph.value_info[:]
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(int8.with_suffix(".tmp")))
    int8.with_suffix(".tmp").replace(int8)
    ops = Counter(n.op_type for n in model.graph.node)
    domains = {n.domain for n in model.graph.node} - {"", "ai.onnx"}
    assert not domains and set(ops) <= ALLOWED_OPS, f"unexpected ops/domains: {dict(ops)} {domains}"

    held_chips = sface_chips.photo_chips(held)
    x = sface_chips.blob([c for _, _, c in held_chips])
    emb = {"f32": embed_ort(f32, x), "int8": embed_ort(int8, x)}
    if args.tract:
        emb["tract f32"], emb["tract int8"] = embed_tract(f32, x), embed_tract(int8, x)
    # Identity pairs: the first (largest) face of each held-out photo with a person folder.
    first = [k for k, (p, i, _) in enumerate(held_chips) if i == 0 and sface_chips.identity(p, args.faces)]
    labels = [sface_chips.identity(held_chips[k][0], args.faces) for k in first]

    lines = [
        f"int8 file: `{int8.name}` sha256 `{sface_to_onnx.sha256_file(int8)}`, {int8.stat().st_size} bytes",
        f"op types: {dict(sorted(ops.items()))}; no com.microsoft ops",
        f"split: {len(recs)} photos with faces, {len(calib)} calibration ({len(calib_x)} chips), {len(held)} held out "
        f"({len(held_chips)} chips); list in calibration-set-sface.txt",
        "int8 vs f32 (onnxruntime) on held-out chips, " + drift(emb["f32"], emb["int8"]),
    ]
    if args.tract:
        lines += [
            f"tract {importlib.metadata.version('tract')} int8 vs onnxruntime int8, " + drift(emb["int8"], emb["tract int8"]),
            "tract int8 vs tract f32, " + drift(emb["tract f32"], emb["tract int8"]),
        ]
    lines.append(f"identity pairs on held-out: {len(first)} faces ({len(set(labels))} people)")
    lines += [f"{name}: " + pair_line(e[first], labels) for name, e in emb.items()]
    print("\n".join(lines))
    if args.report:
        with open(args.report, "a") as f:
            what = "all convs" if args.quantize_depthwise else "full convs only, depthwise convs f32"
            f.write(f"\n## {args.out_name}: int8 (QOperator, {what}, per-tensor, 99.99 percentile)\n\n"
                    "Command (from the repository root):\n\n"
                    f"    python {shlex.join(sys.argv)}\n\n"
                    f"onnxruntime {ort.__version__}.\n\n" + "\n".join(f"- {line}" for line in lines) + "\n")


if __name__ == "__main__":
    main()
