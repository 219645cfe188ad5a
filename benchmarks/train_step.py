"""What one training step costs: the video model as the paper's joint network (all frames
through every layer; SPyNet in the step, the old recipe, and with cached whole-frame flows) and
as per-frame queries (the centre frame's pass, its window as context; the current preset),
beside its single-frame twin.

    python benchmarks/train_step.py [--threads 1] [--batch 4] [--patch 32] [--steps 12]
        [--precision fp32|bf16] [--channels-last] [--device cpu|cuda]

Random data of the training shapes (a step's cost does not depend on the pixels); forward,
Charbonnier loss, backward and Adam, as ``vsrt_cli.train.loop`` does. Prints the median
seconds per step after two warm-up steps (``cuda`` is synchronised before every clock).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch

from vsrt_cli.model import build_model, get_config
from vsrt_cli.train.steps import sr_loss

PRESET = "vsrt-cpu-small-5f"


VARIANTS = ("joint, SPyNet in the step", "joint, cached flows", "per-frame queries, cached flows", "single-frame twin")


def step_seconds(variant: str, args: argparse.Namespace) -> float:
    config = get_config(PRESET)
    if variant == "single-frame twin":
        config = replace(config, num_frame=1, use_flow=False, centre_first=False, neighbour_gates=False, per_frame_queries=False)
    elif variant.startswith("joint"):
        config = replace(config, per_frame_queries=False, flow="spynet" if "SPyNet" in variant else config.flow)
    device = torch.device(args.device)
    net = build_model(config).to(device).train()
    for p in net.spynet.parameters() if net.spynet is not None else ():
        p.requires_grad_(False)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    t, p, b = config.num_frame, args.patch, args.batch
    lr = torch.rand(b, t, 3, p, p, device=device)
    gt = torch.rand(b, t, 3, 4 * p, 4 * p, device=device)
    flows = None
    if "cached" in variant:
        flow = torch.randn(b, t, 2, p, p, device=device)
        flows = (flow, -flow)
    times = []
    for _ in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = sr_loss(net, lr, gt, flows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"preset": PRESET, **vars(args)}
    for variant in VARIANTS:
        result[variant] = round(step_seconds(variant, args), 4)
        print(f"{variant}: {result[variant]:.3f} s/step", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
