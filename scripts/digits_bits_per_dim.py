"""Bits per dimension on the whole test split: the classical baselines and the shipped score models.

    .venv/bin/python scripts/digits_bits_per_dim.py                          # everything, about half an hour
    .venv/bin/python scripts/digits_bits_per_dim.py --models likelihood --steps 12 --no-baselines

Chapter 11 measures the same numbers on a subset of the test digits, to run in about a minute.
Every model is scored on the same dequantised test digits (one uniform draw per digit, seed 2; bin
width 2/16), with the same `bits_per_dim` (eq. (ch10-bpd)); each line gives the mean over the
447 test digits and its standard error.

- Baselines (`sbgm_edu.baselines`), fitted on 10 dequantisation draws of each training digit,
  selected on the validation digits: uniform, full-covariance Gaussian, Gaussian mixture (K in
  1..10), Gaussian KDE (bandwidth in 0.05..0.4).
- Score models (`load_pretrained(name)`): ln p by the instantaneous change of variables along the
  PF-ODE (`sbgm_edu.likelihood.log_prob`: RK4 on the log-SNR grid, exact divergence), for each
  number of steps given (doubling them shows how far the number is from converged).
"""

from __future__ import annotations

import argparse
import time

import torch

from sbgm_edu.baselines import classical_baselines, dequantized_split, mean_and_standard_error
from sbgm_edu.checkpoints import load_pretrained
from sbgm_edu.likelihood import bits_per_dim, log_prob


def report(name: str, log_p: torch.Tensor, seconds: float) -> None:
    mean, standard_error = mean_and_standard_error(bits_per_dim(log_p, 64))
    print(f"{name:>45}: {mean:.4f} bits/dim (standard error {standard_error:.4f}, {log_p.shape[0]} test digits), "
          f"{seconds:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[12, 24], help="RK4 steps of the PF-ODE")
    parser.add_argument("--models", nargs="*", default=["unconditional", "likelihood"], help="load_pretrained names")
    parser.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    y = dequantized_split("test", 1, seed=2)
    if not args.no_baselines:
        start = time.perf_counter()
        baselines, selection = classical_baselines(dequantized_split("train", 10, seed=0),
                                                   dequantized_split("val", 1, seed=1))
        print(f"validation bits/dim of the candidates: {selection}", flush=True)
        for name, model_log_prob in baselines.items():
            report(name, model_log_prob(y), time.perf_counter() - start)
    for name in args.models:
        model, sde = load_pretrained(name)
        model = model.double()
        for steps in args.steps:
            start = time.perf_counter()
            log_p = torch.cat([log_prob(model, sde, y[i : i + 112], steps=steps) for i in range(0, y.shape[0], 112)])
            report(f"{name} ({steps} RK4 steps)", log_p, time.perf_counter() - start)


if __name__ == "__main__":
    main()
