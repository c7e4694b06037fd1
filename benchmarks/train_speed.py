"""Training step time in fp32 and in bf16 mixed precision, measured side by side in one run.

    python benchmarks/train_speed.py [--steps 8] [--full]

One optimizer step (forward, Dice + BCE, backward, Adam) on random data, median over ``--steps`` after two warm-ups,
for the bundled models' configurations (256x256, batch 8, two labels) and, with ``--full``, the full FPN-resnet152
and Segformer-b0 at 768x768 (batch 2). bf16 runs under ``torch.autocast``, which is what ``accelerate`` does for
``--mixed_precision bf16``; weights and optimizer stay fp32. The ratio is bf16 / fp32 (below 1: bf16 is faster).
On CPUs without AVX512-BF16 or AMX, PyTorch emulates bf16 and the ratio is above 1: ``--mixed_precision auto`` uses
bf16 only where it is native.
"""

import argparse
import statistics
import time

import torch

from trus_hf import TrusSegConfig, create_model
from trus_hf.demo import DEMO_CONFIGS
from trus_hf.training.arguments import native_bf16


def step_seconds(config: TrusSegConfig, size: int, batch: int, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, len(config.labels), size, size) > 0.7).float()
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(pixel_values=x, labels=y).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also FPN-resnet152 and Segformer-b0 at 768x768")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cases = [
        ("demo FPN-mobilenet_v2", DEMO_CONFIGS["fpn"], 256, 8),
        ("demo Segformer-b0", DEMO_CONFIGS["segformer"], 256, 8),
    ]
    if a.full:
        cases += [
            ("FPN-resnet152", TrusSegConfig(architecture="fpn", encoder_name="resnet152"), 768, 2),
            ("Segformer-b0", TrusSegConfig(architecture="segformer", segformer_size="b0"), 768, 2),
        ]
    print(f"native bf16 on this machine: {native_bf16()}; {a.threads} threads; median of {a.steps} steps")
    print(f"{'model':<24} {'input':>12} {'fp32 s/step':>12} {'bf16 s/step':>12} {'bf16/fp32':>10}")
    for name, config, size, batch in cases:
        fp32 = step_seconds(config, size, batch, False, a.steps)
        bf16 = step_seconds(config, size, batch, True, a.steps)
        print(f"{name:<24} {f'{batch}x{size}x{size}':>12} {fp32:>12.3f} {bf16:>12.3f} {bf16 / fp32:>9.3f}x")


if __name__ == "__main__":
    main()
