"""Bits per dimension of the shipped digits model on the whole test split (chapter 10 uses 40 digits).

    .venv/bin/python scripts/digits_bits_per_dim.py              # 12 and 24 steps, about 3 minutes
    .venv/bin/python scripts/digits_bits_per_dim.py --steps 12   # about 1 minute

ln p of each uniformly dequantised test digit (one draw per digit, seed 2) by the instantaneous
change of variables along the PF-ODE (`sbgm_edu.likelihood.log_prob`: RK4 on the log-SNR grid,
exact divergence), turned into bits/dim with the digits' bin width 2/16 (`bits_per_dim`).
"""

from __future__ import annotations

import argparse
import time

import torch

from sbgm_edu.data import load_digits
from sbgm_edu.likelihood import DIGITS_BIN_WIDTH, bits_per_dim, dequantize, log_prob
from sbgm_edu.train import load_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[12, 24], help="RK4 steps of the PF-ODE")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    model, sde = load_pretrained()
    y = dequantize(load_digits("test").double(), DIGITS_BIN_WIDTH, torch.Generator().manual_seed(2))
    for steps in args.steps:
        start = time.perf_counter()
        lp = torch.cat([log_prob(model, sde, y[i : i + 112], steps=steps) for i in range(0, y.shape[0], 112)])
        b = bits_per_dim(lp, 64)
        print(f"steps={steps}: {b.mean().item():.4f} bits/dim over {y.shape[0]} test digits "
              f"(standard error {b.std().item() / len(b) ** 0.5:.4f}), {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
