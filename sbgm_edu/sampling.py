"""Sampling: turn prior noise x_1 into data by solving the probability-flow ODE backwards.

Chapter "Sampling" (book/ch07_sampling.ipynb). The book's sampler, eq. (ve-euler-sampler),
draws x_1 from the prior p_01 and takes T reverse-time Euler steps of the PF-ODE
dx/dt = f(x, t) - 1/2 g(t)^2 s_theta(x, t) over the grid t_k = linspace(1, eps, T + 1),
evaluating the drift at the START of each step:

    x_{t - Delta} = x_t + Delta * 1/2 sigma^{2t} s_theta(x_t, t)      (VE SDE, f = 0).

`sample` dispatches every solver name through the registry `sbgm_edu.solvers.REGISTRY`; it
contains no solver of its own. `original_sample` is the one and only reproduction of the sampler of
the original notebook (Tomczak, `intro_dgm/sbgms/sbgm_example.ipynb`), kept for chapter 8
("Why the first attempt fails"), with its differences spelled out. `tile_digits` arranges
samples of the 8x8 digits as one image for display.
"""

from __future__ import annotations

import torch

from sbgm_edu import solvers
from sbgm_edu._checks import check_choice, check_eps, check_positive_int, check_score_fn
from sbgm_edu.sde import SDE, ScoreFn, check_sde


def _check_common(score_fn: ScoreFn, sde: SDE, n: int, dim: int) -> None:
    check_score_fn(score_fn)
    check_sde(sde)
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")


def sampling_grid(steps: int, eps: float = 1e-5) -> torch.Tensor:
    """The time grid of eq. (ve-euler-sampler): `steps` + 1 points from 1 down to eps (float64).

    The same grid as `sbgm_edu.solvers.uniform_time_grid` (one implementation, two names).
    """
    return solvers.uniform_time_grid(steps, eps)


def sample(
    score_fn: ScoreFn,
    sde: SDE,
    n: int,
    dim: int,
    steps: int,
    solver: str = "euler",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    return_path: bool = False,
    grid: str = "uniform",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Draw n samples by solving the PF-ODE from t = 1 to t = eps, eq. (ve-euler-sampler).

    x_1 ~ sde.sample_prior(n, dim, generator, dtype), then `steps` steps of `solver` over the
    time grid `grid` (by default torch.linspace(1, eps, steps + 1)). With solver="euler" each step is
    x_{k+1} = x_k + (t_{k+1} - t_k) f(x_k, t_k), f = pf_ode_drift(sde, score_fn): the drift
    is evaluated at the start t_k of the step; for the VE SDE this is
    x_{t - Delta} = x_t + Delta 1/2 sigma^{2t} s_theta(x_t, t). solver="heun" takes Heun steps
    (two score evaluations per step, eq. (heun-step)). Runs under torch.no_grad().

    Caution with "heun": its last corrector evaluates the score at t = eps on the Euler
    predictor, which still carries noise of about the level sigma at the second-to-last grid
    time; a score near t = eps scales like 1/sigma_eps^2, so that step can overshoot badly
    (Karras et al. 2022 take a plain Euler step at the end for this reason).

    Args:
        score_fn: s_theta(x, t) -> estimate of grad_x ln p_t(x), x of shape (n, dim), t a float;
            it must return the shape of x.
        sde: the forward SDE (e.g. `VESDE(sigma)`); gives the prior and g(t).
        n: number of samples (int >= 1).
        dim: dimension D of each sample (int >= 1), 64 for the 8x8 digits.
        steps: number of solver steps T (int >= 1); Delta = (1 - eps) / T on the uniform grid.
        solver: a name of `sbgm_edu.solvers.REGISTRY`: "euler" or "heun" (`sbgm_edu.ode` on the
            PF-ODE in t), chapter 9's "euler_sigma"/"ddim", "heun_edm", "dpm_solver_2m", or any
            solver added there; run by `sbgm_edu.solvers.solve`.
        eps: the last time, 0 < eps < 1 (the score is not defined at t = 0 for a finite data set).
        generator: torch.Generator for the prior draw (and for the noise of a stochastic solver).
        return_path: if True, return every state, shape (steps + 1, n, dim); path[0] = x_1.
        grid: a name of `sbgm_edu.solvers.TIME_GRIDS`: "uniform" (eq. (ve-euler-sampler), the
            default), "edm" (Karras et al. 2022, rho = 7, eq. (edm-grid)) or "logsnr" (uniform in ln sigma~).
        dtype: dtype of the prior draw and so of the samples (default: torch's default dtype);
            it must be the dtype the score function computes in (float32 for the book's networks).

    Returns:
        The samples x_eps, shape (n, dim) (or the path).
    """
    _check_common(score_fn, sde, n, dim)
    check_choice(solver, "solver", solvers.REGISTRY)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.float32), got {dtype!r}")
    ts = solvers.time_grid(sde, steps, eps, grid)
    with torch.no_grad():
        x1 = sde.sample_prior(n, dim, generator=generator, dtype=dtype)
        return solvers.solve(score_fn, sde, x1, ts, solver, generator=generator, return_path=return_path)


def original_sample(
    score_fn: ScoreFn,
    sde: SDE,
    n: int,
    dim: int,
    T: int = 20,
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    apply_tanh: bool = True,
    return_path: bool = False,
) -> torch.Tensor:
    """The sampler of the original notebook, reproduced faithfully (chapter 8).

    The original `SBGM.sample` does, with its T = 20:

        x = x_1 ~ N(0, sigma_1^2 I)
        ts = linspace(1, eps, T); Delta = ts[0] - ts[1]
        for t in ts[1:]:  x = x - Delta * 1/2 * sigma^t * snet(x + temb(t))
        return tanh(x)

    Its network `snet` learns the NEGATIVE score (its loss matches -sigma_t snet to -x_1),
    so with s_theta = -snet the update is x + Delta 1/2 g(t_{k+1}) s_theta(x, t_{k+1}).
    Compared with eq. (ve-euler-sampler) it differs in four ways:

    1. the grid has T points, so it takes T - 1 steps (19 for T = 20), not T;
    2. the score is evaluated at the DESTINATION time t_{k+1} of each step, not at t_k;
    3. it multiplies by g(t) = sigma^t where the PF-ODE needs g(t)^2 (harmless at
       sigma = 1.01, where g ~ 1, wrong for larger sigma);
    4. it squashes the result with tanh, which hides samples that left [-1, 1].

    Args:
        score_fn: s_theta(x, t), the score estimate (pass the negative of a network that,
            like the original `snet`, outputs minus the score).
        sde: the VE SDE (the original uses VESDE(1.01)); gives the prior and g(t) = sigma^t.
        n, dim: number and dimension of the samples.
        T: the original's T: number of grid points (int >= 2), so T - 1 steps.
        eps: the last time (the original's EPS = 1e-5).
        generator: torch.Generator for the prior draw.
        apply_tanh: apply the final tanh (True in the original); False shows the raw output.
        return_path: if True, return the states before tanh, shape (T, n, dim).

    Returns:
        Samples of shape (n, dim), or the path.
    """
    _check_common(score_fn, sde, n, dim)
    check_positive_int(T, "T", minimum=2)
    ts = torch.linspace(1.0, check_eps(eps), T, dtype=torch.float64).tolist()
    delta = ts[0] - ts[1]
    with torch.no_grad():
        x = sde.sample_prior(n, dim, generator=generator)
        path = [x]
        for t in ts[1:]:
            g = float(sde.diffusion(t))  # g(t_{k+1}), not squared, at the destination time
            x = x + delta * 0.5 * g * score_fn(x, t)
            path.append(x)
        if return_path:
            return torch.stack(path)
        return torch.tanh(x) if apply_tanh else x


def tile_digits(x: torch.Tensor, ncols: int = 8, pad: int = 1, side: int = 8, fill: float = 0.0) -> torch.Tensor:
    """Arrange N flat images (N, side*side) as one image, ncols per row, for `plt.imshow`.

    Image i goes to row i // ncols, column i % ncols of the grid; the images are separated by
    `pad` pixels of value `fill` (0, mid-grey between the black background -1 and white strokes +1,
    so that the images stand apart). Empty cells are `fill`.

    Args:
        x: samples, shape (N, side*side), e.g. (16, 64) for the 8x8 digits.
        ncols: images per row (>= 1).
        pad: pixels between images (>= 0).
        side: height and width of one image.
        fill: value of the padding.

    Returns:
        A float tensor of shape (rows*(side+pad) - pad, ncols*(side+pad) - pad), rows = ceil(N / ncols).
    """
    check_positive_int(ncols, "ncols")
    check_positive_int(pad, "pad", minimum=0)
    check_positive_int(side, "side")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != side * side or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, {side * side}) with N >= 1, got {shape}")
    n = x.shape[0]
    rows = -(-n // ncols)
    cell = side + pad
    grid = torch.full((rows * cell - pad, ncols * cell - pad), float(fill), dtype=torch.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * cell : r * cell + side, c * cell : c * cell + side] = x[i].detach().float().reshape(side, side)
    return grid
