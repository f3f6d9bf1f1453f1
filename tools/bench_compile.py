#!/usr/bin/env python3
"""Benchmark of the core compiler (issue 2, acceptance 6). Prints figures; asserts nothing.

1. Forward time of the fcnkit-compiled FCN-AlexNet (DIGITS deploy prototxt, 8-band input)
   against an equivalent hand-written torch module with the same weights, CPU, measured
   side by side in one run (interleaved rounds in random order with gaps, medians and
   IQRs, the machine's load and measured conv ceiling printed). Target: ratio <= 1.05.
2. caffemodel load time and peak RSS for a generated ~500 MB caffemodel, fcnkit's reader
   against protobuf's own ParseFromString (tools/bench_caffemodel_load.py).
   Targets: load time <= protobuf's, peak RSS <= 1.5x the file size.

Usage: python tools/bench_compile.py [--size 512] [--reps 5] [--skip-load]
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/benchlib.py
FCN_ALEXNET = ROOT.parent / "shared/data/caffe/digits_nvidia/examples/semantic-segmentation/fcn_alexnet.deploy.prototxt"


class HandFcnAlexNet(nn.Module):
    """FCN-AlexNet written by hand (DIGITS fcn_alexnet.deploy.prototxt), for comparison."""

    def __init__(self, bands: int = 8, classes: int = 21):
        super().__init__()
        self.conv1 = nn.Conv2d(bands, 96, 11, 4, 100)
        self.conv2 = nn.Conv2d(96, 256, 5, 1, 2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, 1, 1)
        self.conv4 = nn.Conv2d(384, 384, 3, 1, 1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, 1, 1, groups=2)
        self.fc6 = nn.Conv2d(256, 4096, 6)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.score_fr_21classes = nn.Conv2d(4096, classes, 1)
        self.upscore_21classes = nn.ConvTranspose2d(classes, classes, 63, 32, groups=classes, bias=False)
        self.norm = nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)

    def forward(self, data):
        x = data - 116.0
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2, ceil_mode=True)
        x = self.norm(x)
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.norm(x)
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = F.max_pool2d(F.relu(self.conv5(x)), 3, 2, ceil_mode=True)
        x = F.relu(self.fc6(x))
        x = F.relu(self.fc7(x))
        x = self.upscore_21classes(self.score_fr_21classes(x))
        h, w = data.shape[2:]
        return x[:, :, 18:18 + h, 18:18 + w]


def bench_forward(size: int, reps: int, gap: float = 0.2, ceiling: bool = True) -> None:
    """The compiled module against the hand-written one: ``reps`` interleaved rounds in
    random order with ``gap`` seconds between calls (tools/benchlib.py), medians and IQRs;
    each also as a fraction of the machine's measured conv ceiling."""
    from benchlib import conv_ceiling, interleaved, load_line, machine_line

    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    print(machine_line())
    print(f"at start: {load_line()}")
    ceil = None
    if ceiling:
        ceil, line = conv_ceiling()
        print(line)
    torch.manual_seed(0)
    shape = (1, 8, size, size)
    compiled = compile_net(load_net(FCN_ALEXNET), None, {None: shape})
    hand = HandFcnAlexNet().eval()
    own = compiled.module.state_dict()
    hand.load_state_dict({k: v for k, v in own.items() if k in hand.state_dict()})
    x = torch.rand(shape) * 255
    # the same optimisations allowed to both: fcnkit's inference module (fused, channels-last,
    # prepacked convolutions) against the hand-written module run channels-last, as a torch
    # user would optimise it by hand
    compiled.module.eval()
    fast = compiled.inference_module()
    hand_cl = copy.deepcopy(hand).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        a, b = compiled.module(x)["score"], hand(x)
        diff = (a - b).abs().max().item()
        diff_fast = (fast(x)["score"] - hand_cl(x.contiguous(memory_format=torch.channels_last))).abs().max().item()
        stats = interleaved({"fcnkit": lambda: compiled.module(x), "hand": lambda: hand(x),
                             "fcnkit-inference": lambda: fast(x),
                             "hand-cl": lambda: hand_cl(x.contiguous(memory_format=torch.channels_last))},
                            rounds=reps, warmup=2, gap_s=gap)
    gflop = compiled.analysis.total_flops / 1e9
    print(f"FCN-AlexNet forward, input {shape}, CPU threads {torch.get_num_threads()}, {reps} interleaved "
          f"rounds in random order, {gap:g} s gaps (median, IQR)")
    print(f"  {'module':<22}{'median ms':>10}{'IQR ms':>18}{'GFLOP/s':>10}{'% ceiling':>10}")
    for label, key in (("fcnkit (torch.fx)", "fcnkit"), ("hand-written torch", "hand"),
                       ("fcnkit inference", "fcnkit-inference"), ("hand-written, NHWC", "hand-cl")):
        st = stats[key]
        rate = gflop / (st.median / 1e3)
        frac = f"{100 * rate / ceil:.1f}" if ceil else "-"
        print(f"  {label:<22}{st.median:>10.1f}{f'{st.q1:.1f}-{st.q3:.1f}':>18}{rate:>10.1f}{frac:>10}")
    ratio = stats["fcnkit"].median / stats["hand"].median
    print(f"  ratio fcnkit / hand = {ratio:.3f} (target <= 1.05); outputs differ by {diff:.2e}; "
          f"{gflop:.1f} GFLOP per forward")
    ratio = stats["fcnkit-inference"].median / stats["hand-cl"].median
    print(f"  ratio fcnkit inference module / hand-written NHWC = {ratio:.3f} (target <= 1.05); outputs differ "
          f"by {diff_fast:.2e}")
    print(f"at end: {load_line()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gap", type=float, default=0.2, help="seconds of sleep between two timed calls")
    ap.add_argument("--no-ceiling", action="store_true", help="skip measuring the conv ceiling")
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    bench_forward(args.size, args.reps, args.gap, not args.no_ceiling)
    if not args.skip_load:
        print()
        subprocess.run([sys.executable, str(ROOT / "tools" / "bench_caffemodel_load.py")], check=True)


if __name__ == "__main__":
    main()
