"""Denoising score matching (DSM): the loss, its per-example form, the validation loss and the proxy.

Chapter "Training a score model" (book/ch06_training.ipynb) derives every step:

- `dsm_loss_per_example`: 1/2 lambda_t ||s_theta(x_t, t) + noise / sigma_t||^2 / D for
  given x_0, t and noise, eq. (dsm-loss) with the weight of eq. (dsm-weight).
- `dsm_loss`: one Monte Carlo estimate of the DSM objective over time, following the
  training steps of eq. (dsm-steps) (Vincent 2011; Song et al. 2021). A `time_sampler`
  may replace the uniform draw of t by any density, with its importance weight.
- `validation_loss`: the same objective on a fixed time grid with fixed noise, so that
  numbers from different epochs can be compared.
- `log_prob_proxy`: the "log-likelihood proxy" of the companion notebook
  `sbgms/sbgm_example.ipynb` (J. M. Tomczak, `intro_dgm`), kept for comparison. It is
  neither a log-likelihood nor a bound on one (see its docstring).

Names: `noise` is the standard normal draw (the post calls it x_1 in training); `eps` is
only the smallest time; `steps` is always an int.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sbgm_edu._checks import check_eps, check_positive_int, check_tensor
from sbgm_edu.sde import SDE, ScoreFn, check_sde

LossWeight = Callable[[torch.Tensor], torch.Tensor]
"""lambda(t) -> weight, for t of shape (N,) returns shape (N,)."""

TimeSampler = Callable[[int, "torch.Generator | None"], tuple[torch.Tensor, torch.Tensor]]
"""(n, generator) -> (t, importance_weight), both of shape (n,); t in (0, 1], weight >= 0, finite."""

EPS = 1e-5
"""Smallest time used in training and sampling (the notebook's EPS)."""

REDUCTIONS = ("mean", "none")


def proxy_loss_weight(sde: SDE) -> LossWeight:
    """The weight of the original notebook's proxy, written for the score-space loss: sigma_t^4.

    The original's `log_prob_proxy` computes, at a scalar time t, 1/2 lambda_t ||x_1 - eps_theta||^2
    with lambda_t = sigma_t^2 *on top of* the noise-space error, and ||x_1 - eps_theta||^2 =
    sigma_t^2 ||s_theta + x_1 / sigma_t||^2 already carries one sigma_t^2: in the form of
    eq. (dsm-loss) its weight is sigma_t^4. This is also the weight of the post's formula.
    The original's *training* loss is not this: its time has shape (N, 1), which broadcasts
    the weight away (see `sbgm_edu.original.original_loss`).
    """
    check_sde(sde)
    return lambda t: sde.marginal_std(t) ** 4


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def dsm_loss_per_example(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    sde: SDE,
    t: torch.Tensor,
    noise: torch.Tensor,
    loss_weight: LossWeight | None = None,
) -> torch.Tensor:
    """1/2 lambda_t ||s_theta(x_t, t) + noise / sigma_t||^2 / D for given x_0, t and noise, eq. (dsm-loss).

    Steps 4 to 6 of eq. (dsm-steps): x_t = m_t x_0 + sigma_t noise (x_t = x_0 + sigma_t noise
    for the VE SDE), then the score estimate at (x_t, t), then the weighted squared
    distance to the conditional score grad ln p_0t(x_t | x_0) = -noise / sigma_t.
    The squared norm is divided by D (a mean over coordinates, as in the original
    notebook), so the number is per pixel and does not grow with the dimension.

    Args:
        score_fn: s_theta(x, t) -> (N, D), t an (N,) tensor.
        x0: data, shape (N, D).
        sde: the forward SDE.
        t: times in (0, 1], shape (N,).
        noise: standard normal noise, shape (N, D).
        loss_weight: lambda(t); None means lambda_t = sigma_t^2 (`sde.loss_weight`), eq. (dsm-weight).

    Returns:
        The loss of each example, shape (N,).
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    check_tensor(noise, "noise", ndim=2)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    if not isinstance(t, torch.Tensor) or t.shape != (x0.shape[0],):
        raise ValueError(f"t must be a tensor of shape ({x0.shape[0]},), one time per row of x0")
    sigma_t = sde.marginal_std(t).to(x0.dtype)  # (N,)
    if not (sigma_t > 0).all():
        raise ValueError("t must be > 0 (sigma_t = 0 at t = 0)")
    weight = (sde.loss_weight(t) if loss_weight is None else loss_weight(t)).to(x0.dtype)
    x_t = sde.perturb(x0, t, noise)  # step 4
    score = score_fn(x_t, t)  # step 5
    target = -noise / sigma_t[:, None]  # grad ln p_0t(x_t | x_0)
    return 0.5 * weight * ((score - target) ** 2).mean(dim=1)  # step 6


def _check_time_sample(t: torch.Tensor, weight: torch.Tensor, n: int) -> None:
    """The output of a user's time_sampler: two finite (n,) tensors, t in (0, 1], weight >= 0."""
    for name, value in (("t", t), ("importance_weight", weight)):
        if not isinstance(value, torch.Tensor) or value.shape != (n,):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"time_sampler must return (t, importance_weight) of shape ({n},) each; {name} is {got}")
        if not torch.isfinite(value).all():
            raise ValueError(f"time_sampler returned a non-finite {name}")
    if not ((t > 0) & (t <= 1)).all():
        raise ValueError("time_sampler must return times t in (0, 1]")
    if (weight < 0).any():
        raise ValueError("time_sampler must return importance weights >= 0")


def draw_time_and_noise(
    x0: torch.Tensor,
    eps: float = EPS,
    generator: torch.Generator | None = None,
    time_sampler: TimeSampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 2 and 3 of eq. (dsm-steps): t (N,) first, then noise (N, D) ~ N(0, I), both from `generator`.

    Without `time_sampler`, t = eps + (1 - eps) u with u ~ U(0, 1) and importance weight 1;
    with it, (t, weight) = time_sampler(N, generator), e.g. a density that favours hard times
    with weight 1 / (its density), so that the loss keeps the mean of the uniform draw.

    Returns:
        (t, importance_weight, noise) with the dtype and device of x0; shapes (N,), (N,), (N, D).
    """
    n = x0.shape[0]
    draw_device = generator.device if generator is not None else x0.device
    if time_sampler is None:
        u = torch.rand(n, generator=generator, device=draw_device, dtype=x0.dtype)
        t, weight = eps + (1.0 - eps) * u, torch.ones_like(u)
    else:
        t, weight = time_sampler(n, generator)
        _check_time_sample(t, weight, n)
    noise = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype)
    return t.to(x0.device, x0.dtype), weight.to(x0.device, x0.dtype), noise.to(x0.device)


def dsm_loss(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    sde: SDE,
    eps: float = EPS,
    generator: torch.Generator | None = None,
    *,
    loss_weight: LossWeight | None = None,
    time_sampler: TimeSampler | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """One Monte Carlo estimate of the DSM objective over time, eq. (dsm-loss) with eq. (dsm-weight).

    The training steps of eq. (dsm-steps), for a batch x_0 of shape (N, D): t and the noise
    from `draw_time_and_noise` (t ~ U(eps, 1) drawn first, shape (N,); noise ~ N(0, I)
    second, shape (N, D)), then `dsm_loss_per_example` times the importance weight of t.
    With lambda_t = sigma_t^2 the per-example loss is 1/2 ||noise + sigma_t s_theta(x_t, t)||^2 / D,
    the noise-prediction loss of Ho et al. written with eps_theta = -sigma_t s_theta.

    Args:
        score_fn: s_theta(x, t), e.g. a `ScoreNet`.
        x0: a batch of data, shape (N, D).
        sde: the forward SDE (gives sigma_t and lambda_t).
        eps: smallest time, t ~ U(eps, 1) (used only without `time_sampler`).
        generator: a torch.Generator (on the CPU or on x0's device) for reproducible draws.
        loss_weight: lambda(t); None means sigma_t^2.
        time_sampler: (n, generator) -> (t, importance_weight), or None for U(eps, 1) and weight 1.
        reduction: "mean" (a 0-d tensor) or "none" (shape (N,)).

    Returns:
        The loss, differentiable with respect to the parameters of score_fn.
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    eps = check_eps(eps)
    _check_reduction(reduction)
    if x0.shape[0] == 0:
        raise ValueError("x0 must hold at least one example, got an empty batch")
    t, weight, noise = draw_time_and_noise(x0, eps, generator, time_sampler)
    losses = weight * dsm_loss_per_example(score_fn, x0, sde, t, noise, loss_weight)
    return losses.mean() if reduction == "mean" else losses


def _grid_losses(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    ts: torch.Tensor,
    generator: torch.Generator | None,
    loss_weight: LossWeight | None,
) -> torch.Tensor:
    """Per-example DSM losses at each time of the grid ts, one noise draw per time: shape (len(ts), N)."""
    rows = []
    draw_device = generator.device if generator is not None else x0.device
    for t in ts.tolist():
        noise = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype).to(x0.device)
        t_batch = torch.full((x0.shape[0],), t, dtype=x0.dtype, device=x0.device)
        rows.append(dsm_loss_per_example(score_fn, x0, sde, t_batch, noise, loss_weight))
    return torch.stack(rows)


def _check_held_out(score_fn: ScoreFn, sde: SDE, x0: torch.Tensor, steps: int, eps: float, min_steps: int) -> float:
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    if x0.shape[0] == 0:
        raise ValueError("x0 must hold at least one example, got an empty batch")
    check_positive_int(steps, "steps", minimum=min_steps)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    return check_eps(eps)


@torch.no_grad()
def validation_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    steps: int = 20,
    eps: float = EPS,
    repeats: int = 1,
    generator: torch.Generator | None = None,
    loss_weight: LossWeight | None = None,
) -> float:
    """The DSM objective of eq. (dsm-loss) on held-out data, as a deterministic number.

    The integral over t in [eps, 1] is replaced by the midpoint rule on `steps`
    equal cells, t_k = eps + (1 - eps)(k + 1/2)/steps, and the expectation over
    the noise by `repeats` draws per time. With a freshly seeded `generator` the noise is
    the same every time it is called, so the values of different epochs differ only
    because the network changed (common random numbers). Estimates the same number
    as the mean of `dsm_loss` (without its noise in t).

    Args:
        score_fn: s_theta(x, t).
        sde: the forward SDE.
        x0: held-out data, shape (N, D).
        steps: number of times on the grid (int >= 1).
        eps: smallest time.
        repeats: noise draws per time and example (>= 1).
        generator: a torch.Generator; pass a fresh `torch.Generator().manual_seed(k)`.
        loss_weight: lambda(t); None means sigma_t^2.

    Returns:
        The mean loss per example and coordinate, a float (NaN or inf if the network returns them).
    """
    eps = _check_held_out(score_fn, sde, x0, steps, eps, min_steps=1)
    check_positive_int(repeats, "repeats")
    ts = eps + (1.0 - eps) * (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    total = 0.0
    for _ in range(repeats):
        total += _grid_losses(score_fn, sde, x0, ts, generator, loss_weight).mean().item()
    return total / repeats


@torch.no_grad()
def log_prob_proxy(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    steps: int = 20,
    eps: float = EPS,
    generator: torch.Generator | None = None,
    loss_weight: LossWeight | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The original notebook's "log-likelihood proxy": the DSM loss summed over a fixed time grid.

    For each of the `steps` times t_k = linspace(eps, 1, steps) (the original uses
    its number of sampling grid points T = 20 here), draw one noise ~ N(0, I) per example
    and add up 1/2 lambda(t_k) ||s_theta(x_t, t_k) + noise / sigma_t||^2 / D. By
    default lambda is the original's effective weight sigma_t^4 (`proxy_loss_weight`:
    its time is a scalar here, so nothing broadcasts), so this reproduces the number the
    original reports.

    What it is: a (scaled, noisy) Riemann sum of a weighted DSM objective, a
    useful score for comparing two models *with the same sde and weight*. What it
    is not: a log-likelihood, nor a bound on one. The bound of Song et al. (2021),
    -ln p_0(x_0) <= -E ln p_1(x_1) + integral of 1/2 g(t)^2 E||s_theta - grad ln p_0t||^2 dt
    + const, needs lambda_t = g(t)^2 (for the VE SDE g^2 = 1 + 2 ln(sigma) sigma_t^2),
    the squared norm summed (not averaged) over coordinates, the integral (a
    sum times 1/steps), the prior term and the constant; the proxy has none of these.
    Chapter "Other SDEs and likelihood" computes the exact ln p.

    Args:
        score_fn, sde, x0 (N, D), eps, generator: as in `validation_loss`.
        steps: number of grid times (int >= 2), including both ends eps and 1.
        loss_weight: lambda(t); None means `proxy_loss_weight(sde)`.
        reduction: "mean" (0-d tensor, averaged over examples) or "none" (shape (N,)).

    Returns:
        The proxy (lower is better in the original's training loop).
    """
    eps = _check_held_out(score_fn, sde, x0, steps, eps, min_steps=2)
    _check_reduction(reduction)
    weight = proxy_loss_weight(sde) if loss_weight is None else loss_weight
    ts = torch.linspace(eps, 1.0, steps, dtype=torch.float64)
    proxy = _grid_losses(score_fn, sde, x0, ts, generator, weight).sum(dim=0)
    return proxy.mean() if reduction == "mean" else proxy


__all__ = [
    "EPS",
    "LossWeight",
    "TimeSampler",
    "draw_time_and_noise",
    "dsm_loss",
    "dsm_loss_per_example",
    "log_prob_proxy",
    "proxy_loss_weight",
    "validation_loss",
]
