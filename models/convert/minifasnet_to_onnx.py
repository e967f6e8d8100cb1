#!/usr/bin/env python3
"""Convert Minivision's MiniFASNet anti-spoofing networks (Apache-2.0) to ONNX for tract.

Source: `2.7_80x80_MiniFASNetV2.pth` and `4_0_0_80x80_MiniFASNetV1SE.pth` from the public repository
minivision-ai/Silent-Face-Anti-Spoofing (commit b6d5f04ad78778917853b25c778acef6d5626d15,
resources/anti_spoof_models/), checked against their sha256 below. They are PyTorch state dicts whose keys
carry a `module.` prefix (saved from a DataParallel wrapper).

The network is rebuilt here from the published description, with every channel width read from the
weights' own shapes (so one builder serves V2 and V1SE):
  conv1 (3x3/2, BN, PReLU) -> conv2_dw (3x3 depthwise) ->
  [down-block (1x1 expand, 3x3/2 depthwise, 1x1 project) -> N residual blocks of the same shape, stride 1,
   the last one of each stage with a squeeze-excitation gate in the SE variant] x 3 stages (conv_23/conv_3,
  conv_34/conv_4, conv_45/conv_5) -> conv_6_sep (1x1, BN, PReLU) -> conv_6_dw (5x5 depthwise, BN)
  -> flatten -> linear 512->128 -> BatchNorm1d -> prob 128->3 (logits; class 1 = real face).
Input: 1x3x80x80, BGR, raw 0..255 (the reference feeds the crop without scaling). Batch norms are folded
by the exporter (eval mode); the graph is opset 13 and holds Conv, PRelu, Relu, Sigmoid, GlobalAveragePool,
Mul, Add, Flatten, Gemm, so tract-onnx runs it. A Softmax is appended so the output is the probabilities
the reference reports (`F.softmax` of the logits).

Usage: minifasnet_to_onnx.py [--weights DIR] [--out models/]
"""
import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

SHA256 = {
    "2.7_80x80_MiniFASNetV2.pth": "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
    "4_0_0_80x80_MiniFASNetV1SE.pth": "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
}
# weights file -> (our ONNX name, crop scale)
OUTPUTS = {
    "2.7_80x80_MiniFASNetV2.pth": ("minifasnet_v2_2.7_f32.onnx", 2.7),
    "4_0_0_80x80_MiniFASNetV1SE.pth": ("minifasnet_v1se_4.0_f32.onnx", 4.0),
}
STAGES = [("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")]


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ PReLU when the weights have one)."""

    def __init__(self, sd, prefix, stride=1):
        super().__init__()
        w = sd[prefix + ".conv.weight"]
        out_c, in_per_group, k, _ = w.shape
        groups = out_c if in_per_group == 1 and out_c > 1 and k > 1 else 1
        in_c = in_per_group * groups
        self.conv = nn.Conv2d(in_c, out_c, k, stride=stride, padding=(k // 2 if k == 3 else 0),
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c) if prefix + ".prelu.weight" in sd else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    """Channel gate: x * sigmoid(BN(1x1(ReLU(BN(1x1(mean over space))))))."""

    def __init__(self, sd, prefix):
        super().__init__()
        mid, ch = sd[prefix + ".fc1.weight"].shape[:2]
        self.fc1 = nn.Conv2d(ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        g = x.mean(dim=(2, 3), keepdim=True)
        g = torch.relu(self.bn1(self.fc1(g)))
        return x * torch.sigmoid(self.bn2(self.fc2(g)))


class Bottleneck(nn.Module):
    """1x1 expand, 3x3 depthwise (stride), 1x1 linear project; residual (and SE gate) when given."""

    def __init__(self, sd, prefix, stride, residual):
        super().__init__()
        self.conv = ConvBN(sd, prefix + ".conv")
        self.conv_dw = ConvBN(sd, prefix + ".conv_dw", stride=stride)
        self.project = ConvBN(sd, prefix + ".project")
        self.residual = residual
        self.se_module = SqueezeExcite(sd, prefix + ".se_module") if prefix + ".se_module.fc1.weight" in sd else None

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    """A run of stride-1 residual bottlenecks (held in `.model` as in the weights' key names)."""

    def __init__(self, sd, prefix):
        super().__init__()
        n = 1 + max(int(k[len(prefix) + 7:].split(".")[0]) for k in sd if k.startswith(prefix + ".model."))
        self.model = nn.Sequential(*[Bottleneck(sd, f"{prefix}.model.{i}", 1, True) for i in range(n)])

    def forward(self, x):
        return self.model(x)


class MiniFASNet(nn.Module):
    def __init__(self, sd):
        super().__init__()
        self.conv1 = ConvBN(sd, "conv1", stride=2)
        self.conv2_dw = ConvBN(sd, "conv2_dw")
        for down, stage in STAGES:
            setattr(self, down, Bottleneck(sd, down, 2, False))
            setattr(self, stage, Stage(sd, stage))
        self.conv_6_sep = ConvBN(sd, "conv_6_sep")
        self.conv_6_dw = ConvBN(sd, "conv_6_dw")
        emb, flat = sd["linear.weight"].shape
        self.linear = nn.Linear(flat, emb, bias=False)
        self.bn = nn.BatchNorm1d(emb)
        self.prob = nn.Linear(emb, sd["prob.weight"].shape[0], bias=False)

    def forward(self, x):
        x = self.conv2_dw(self.conv1(x))
        for down, stage in STAGES:
            x = getattr(self, stage)(getattr(self, down)(x))
        x = self.conv_6_dw(self.conv_6_sep(x)).flatten(1)
        return self.prob(self.bn(self.linear(x)))


class WithSoftmax(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path):
    """The reference model: our rebuilt architecture with the original state dict loaded strictly."""
    got = sha256(path)
    want = SHA256[Path(path).name]
    if got != want:
        sys.exit(f"{path}: sha256 {got}, expected {want}")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module."): v for k, v in raw.items()}
    net = MiniFASNet(sd)
    net.load_state_dict(sd, strict=True)
    return net.eval()


def export(net, out):
    torch.manual_seed(0)
    dummy = torch.rand(1, 3, 80, 80) * 255
    torch.onnx.export(WithSoftmax(net).eval(), dummy, str(out), input_names=["input"], output_names=["prob"],
                      opset_version=13, do_constant_folding=True, dynamo=False)
    m = onnx.load(str(out))
    m.producer_name = "facegate minifasnet_to_onnx.py"
    m.producer_version = ""
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    ops = sorted({n.op_type for n in m.graph.node})
    return ops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="../shared/models/silent-face-anti-spoofing")
    ap.add_argument("--out", default="models")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name, (onnx_name, scale) in OUTPUTS.items():
        net = load(Path(a.weights) / name)
        params = sum(p.numel() for p in net.parameters())
        out = Path(a.out) / onnx_name
        ops = export(net, out)
        # the exported file must compute what the model computes
        import onnxruntime as ort
        x = np.random.default_rng(1).uniform(0, 255, (1, 3, 80, 80)).astype(np.float32)
        with torch.no_grad():
            ref = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        print(f"{out}: scale {scale}, {params} parameters, ops {ops}, sha256 {sha256(out)}, "
              f"max |ort - torch| on noise {np.abs(got - ref).max():.2e}")


if __name__ == "__main__":
    main()
