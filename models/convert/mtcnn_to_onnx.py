#!/usr/bin/env python3
"""Convert facenet-pytorch's MTCNN weights (P-Net, R-Net, O-Net) to ONNX, without torch.

Source: the PyPI wheel facenet_pytorch-2.6.0 (MIT). Its facenet_pytorch/data/{pnet,rnet,onet}.pt are
state dicts in torch's *legacy* (pre-1.6, non-zip) serialization: a sequence of pickles (magic number,
protocol version, system info, the state dict, the list of storage keys) followed by each storage as an
int64 element count and the raw little-endian data. They are decoded here with pickle + numpy.

The layer definitions mirror facenet_pytorch/models/mtcnn.py:
  conv -> PReLU -> MaxPool(ceil_mode=True) ... -> [R/O-Net: permute(0,3,2,1), flatten, Linear] -> Softmax.

ONNX graphs use opset 13 and only Conv, PRelu, MaxPool, Flatten, Gemm and Softmax (no Transpose, no Identity), so tract-onnx can run them:
  * MaxPool ceil_mode=True is expressed as ceil_mode=0 with an explicit end padding of (stride-1):
    floor((L + s - 1 - k) / s) + 1 == ceil((L - k) / s) + 1 for every L (also symbolic P-Net sizes),
    and every window still overlaps real input, so padded cells never win the max.
  * The permute(0,3,2,1) before the first dense layer is folded into that layer's weight columns, so a plain
    NCHW Flatten feeds the Gemm (no Transpose node).
  * facenet-pytorch's weights already work on images in normal orientation (rows = height); the original
    Caffe/TF MTCNN weights expect the image transposed. No transposition is needed or baked in here
    (verify_mtcnn.py checks this against the TFLite build of the original weights).

Inputs are NCHW float32 RGB, pre-normalised by the caller as (x - 127.5) * 0.0078125.
"""
import argparse
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
PT_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
OPSET = 13
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}

# Layer lists: (kind, name, attrs). "pool" attrs are (kernel, stride).
PNET = [("conv", "conv1"), ("prelu", "prelu1"), ("pool", (2, 2)), ("conv", "conv2"), ("prelu", "prelu2"),
        ("conv", "conv3"), ("prelu", "prelu3")]
RNET = [("conv", "conv1"), ("prelu", "prelu1"), ("pool", (3, 2)), ("conv", "conv2"), ("prelu", "prelu2"),
        ("pool", (3, 2)), ("conv", "conv3"), ("prelu", "prelu3"), ("flatten", (64, 3, 3)),
        ("dense", "dense4"), ("prelu", "prelu4")]
ONET = [("conv", "conv1"), ("prelu", "prelu1"), ("pool", (3, 2)), ("conv", "conv2"), ("prelu", "prelu2"),
        ("pool", (3, 2)), ("conv", "conv3"), ("prelu", "prelu3"), ("pool", (2, 2)), ("conv", "conv4"),
        ("prelu", "prelu4"), ("flatten", (128, 3, 3)), ("dense", "dense5"), ("prelu", "prelu5")]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Storage:
    """Placeholder for a storage whose bytes follow the pickles in the legacy format."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _LazyTensor:
    """A tensor view (offset/size/stride in elements) on a storage, resolved once storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def resolve(self) -> np.ndarray:
        base = self.storage.array
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return _LazyTensor(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Allows only the few globals a state dict needs; maps torch storages/tensors to numpy placeholders."""

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        # Legacy format: ('storage', storage_type, key, location, numel, view_metadata)
        kind, dtype, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, numel)
        return self.storages[key]


def load_legacy_state_dict(data: bytes) -> "OrderedDict[str, np.ndarray]":
    """Decode a legacy torch.save() file (the format of facenet-pytorch's .pt files) into numpy arrays."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("zip-format torch file; this loader handles the legacy format only")
    f = io.BytesIO(data)
    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        raise ValueError("not a legacy torch file (bad magic number)")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian torch file")
    storages = {}
    state = _StateDictUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            raise ValueError(f"storage {key}: header says {numel} elements, pickle says {st.numel}")
        nbytes = numel * np.dtype(st.dtype).itemsize
        st.array = np.frombuffer(f.read(nbytes), dtype=st.dtype).copy()
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    return OrderedDict((k, v.resolve()) for k, v in state.items())


def read_weights(wheel: Path) -> dict:
    """Return {'pnet': state_dict, ...} from the wheel after checking all sha256 sums."""
    raw = wheel.read_bytes()
    if sha256(raw) != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 mismatch (expected {WHEEL_SHA256})")
    out = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for net, digest in PT_SHA256.items():
            data = z.read(f"facenet_pytorch/data/{net}.pt")
            if sha256(data) != digest:
                sys.exit(f"{net}.pt: sha256 mismatch (expected {digest})")
            out[net] = load_legacy_state_dict(data)
    return out


class GraphBuilder:
    """Accumulates nodes and initializers for one sequential network."""

    def __init__(self, sd):
        self.sd, self.nodes, self.inits, self.used = sd, [], [], set()
        self.flat = False  # after Flatten, PReLU slopes are 1-D
        self.dense_seen = False
        self.chw = None  # (C, H, W) of the tensor that was flattened

    def w(self, key, array=None):
        self.used.add(key)
        arr = self.sd[key] if array is None else array
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), key))
        return key

    def node(self, op, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def run(self, layers, x):
        for kind, arg in layers:
            if kind == "conv":
                x = self.conv(x, arg)
            elif kind == "prelu":
                shape = (-1, 1, 1) if not self.flat else (-1,)
                slope = self.sd[f"{arg}.weight"].reshape(shape)
                x = self.node("PRelu", [x, self.w(f"{arg}.weight", slope)], arg)
            elif kind == "pool":
                k, s = arg
                x = self.node("MaxPool", [x], f"pool_{len(self.nodes)}", kernel_shape=[k, k],
                              strides=[s, s], pads=[0, 0, s - 1, s - 1], ceil_mode=0)
            elif kind == "flatten":
                self.chw = arg
                x = self.node("Flatten", [x], "flatten", axis=1)
                self.flat = True
            elif kind == "dense":
                x = self.dense(x, arg, first=not self.dense_seen)
                self.dense_seen = True
        return x

    def conv(self, x, name, out=None):
        wt = self.sd[f"{name}.weight"]
        return self.node("Conv", [x, self.w(f"{name}.weight"), self.w(f"{name}.bias")], out or name,
                         kernel_shape=list(wt.shape[2:]), strides=[1, 1], pads=[0, 0, 0, 0])

    def dense(self, x, name, first=False, out=None):
        wt = self.sd[f"{name}.weight"]
        if first:
            # torch flattens permute(0,3,2,1) i.e. (W,H,C) order; reorder columns to NCHW (C,H,W) flatten order.
            c, h, w = self.chw
            wt = wt.reshape(-1, w, h, c).transpose(0, 3, 2, 1).reshape(wt.shape[0], -1)
        return self.node("Gemm", [x, self.w(f"{name}.weight", wt), self.w(f"{name}.bias")], out or name, transB=1)


def build(net: str, sd) -> onnx.ModelProto:
    g = GraphBuilder(sd)
    if net == "pnet":
        shape, layers = ["N", 3, "H", "W"], PNET
    elif net == "rnet":
        shape, layers = ["N", 3, 24, 24], RNET
    else:
        shape, layers = ["N", 3, 48, 48], ONET
    x = g.run(layers, "input")
    if net == "pnet":
        logits = g.conv(x, "conv4_1")
        g.node("Softmax", [logits], "prob", axis=1)
        g.conv(x, "conv4_2", out="reg")
        outs = [("prob", ["N", 2, "h", "w"]), ("reg", ["N", 4, "h", "w"])]
    else:
        head = {"rnet": "dense5", "onet": "dense6"}[net]
        g.node("Softmax", [g.dense(x, f"{head}_1")], "prob", axis=1)
        g.dense(x, f"{head}_2", out="reg")
        outs = [("prob", ["N", 2]), ("reg", ["N", 4])]
        if net == "onet":
            g.dense(x, "dense6_3", out="landmarks")
            outs.append(("landmarks", ["N", 10]))
    unused = set(sd) - g.used
    if unused:
        raise RuntimeError(f"{net}: weights not used: {sorted(unused)}")
    graph = helper.make_graph(
        g.nodes, f"mtcnn_{net}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outs],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate mtcnn_to_onnx.py")
    model.ir_version = 7  # the IR version of ONNX 1.8, which introduced opset 13
    model.doc_string = (f"MTCNN {net} from facenet_pytorch-2.6.0 (MIT) data/{net}.pt sha256 {PT_SHA256[net]}. "
                        "Input NCHW RGB normal orientation, (x-127.5)*0.0078125.")
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, default=Path("/work/cache/dl/facenet_pytorch-2.6.0-py3-none-any.whl"),
                    help="facenet_pytorch-2.6.0 wheel (sha256-checked)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="where mtcnn_{pnet,rnet,onet}.onnx are written (default: models/)")
    args = ap.parse_args()
    weights = read_weights(args.wheel)
    for net, sd in weights.items():
        model = build(net, sd)
        path = args.out_dir / f"mtcnn_{net}.onnx"
        data = model.SerializeToString()
        path.write_bytes(data)
        ops = sorted({n.op_type for n in model.graph.node})
        print(f"{path}  sha256 {sha256(data)}  ops {','.join(ops)}")


if __name__ == "__main__":
    main()
