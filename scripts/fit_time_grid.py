"""Fit the last noise level of chapter 9's "fitted" grid on random 2-D mixtures (NOT on chapter 9's problems).

The grid (`sbgm_edu.solvers.fitted_time_grid`) takes steps - 1 steps uniform in ell = -ln sigma~ from
sigma~_1 down to sigma~_last, then the denoising step to t = 0. This script chooses sigma~_last for
NFE = 10 by minimising the mean squared error of DPM-Solver++(3M) and UniPC, relative to each
problem's data scale, over random Gaussian mixtures (2 to 4 components, means ~ N(0, 2^2 I), standard
deviations uniform in [0.2, 0.6], 64 prior draws each, reference end points by scipy's DOP853 at
rtol = atol = 1e-9), under VESDE(25) with eps = 1e-5, by a search over 41 log-spaced values in [0.01, 0.3].
The problems are drawn with seed 1234; chapter 9 scores the result on its own two problems (seed 0),
which play no part here.

    python scripts/fit_time_grid.py            # prints sigma~_last, writes _build/fitted_time_grid.json

Runs in about a minute on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from sbgm_edu.scores import diffused_mixture_score
from sbgm_edu.sde import VESDE, pf_ode_drift
from sbgm_edu.solvers import fitted_time_grid, solve

SOLVERS = ("dpm_solver_3m", "unipc")


def random_mixture_problem(sde: VESDE, eps: float, generator: torch.Generator, draws: int = 64):
    """(score, prior draws, exact end points, data scale) for a random 2-D Gaussian mixture."""
    k = int(torch.randint(2, 5, (1,), generator=generator))
    means = 2.0 * torch.randn(k, 2, generator=generator, dtype=torch.float64)
    stds = torch.empty(k, dtype=torch.float64).uniform_(0.2, 0.6, generator=generator)
    weights = torch.rand(k, generator=generator, dtype=torch.float64) + 0.2
    weights = weights / weights.sum()
    score = diffused_mixture_score(sde, means, stds, weights)
    x1 = sde.prior_std() * torch.randn(draws, 2, generator=generator, dtype=torch.float64)
    drift = pf_ode_drift(sde, score)
    ref = solve_ivp(lambda t, y: drift(torch.as_tensor(y).reshape(x1.shape), float(t)).reshape(-1).numpy(),
                    (1.0, eps), x1.reshape(-1).numpy(), method="DOP853", rtol=1e-9, atol=1e-9)
    mean = (weights[:, None] * means).sum(0)
    scale = math.sqrt((weights * (stds**2 + ((means - mean) ** 2).sum(1) / 2)).sum().item())
    return score, x1, torch.as_tensor(ref.y[:, -1]).reshape(x1.shape), scale


def mean_squared_error(problems, sde: VESDE, nfe: int, eps: float, sigma_last: float) -> float:
    """Mean over problems and SOLVERS of (RMS error / data scale)^2 at `nfe` evaluations."""
    ts = fitted_time_grid(sde, nfe, eps, sigma_last)
    errs = [((solve(score, sde, x1, ts, name) - exact).pow(2).mean() / scale**2).item()
            for score, x1, exact, scale in problems for name in SOLVERS]
    return float(np.mean(errs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, default=Path("_build/fitted_time_grid.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    sde, eps = VESDE(25.0), 1e-5
    generator = torch.Generator().manual_seed(args.seed)
    problems = [random_mixture_problem(sde, eps, generator) for _ in range(args.problems)]
    candidates = np.exp(np.linspace(math.log(0.01), math.log(0.3), 41))
    scores = [mean_squared_error(problems, sde, args.nfe, eps, float(c)) for c in candidates]
    best = float(candidates[int(np.argmin(scores))])
    for c, s in zip(candidates, scores):
        print(f"sigma_last = {c:.4f}: mean squared relative error {s:.3e}{'  <- best' if c == best else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"nfe": args.nfe, "sigma_last": best, "seed": args.seed,
                                    "problems": args.problems, "solvers": list(SOLVERS)}, indent=1))
    print(f"best sigma_last = {best:.4f} (written to {args.out})")


if __name__ == "__main__":
    main()
