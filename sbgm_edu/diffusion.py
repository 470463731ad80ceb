"""The discrete forward diffusion process (chapter 1, book/ch01_diffusion.ipynb).

A data point x_0 is corrupted in T small steps k = 1, ..., T,

    x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) epsilon_k,   epsilon_k ~ N(0, I),   eq. (forward-discrete)

with a noise schedule 0 < beta_k < 1. Because each step is linear and Gaussian,
x_k given x_0 is Gaussian, with alpha_k = prod_{j <= k} (1 - beta_j):

    x_k = sqrt(alpha_k) x_0 + sqrt(1 - alpha_k) epsilon,                     eq. (closed-form-marginal)

and x_0 is recovered exactly from x_k when the noise epsilon is known, eq. (x0-from-noise).
A network epsilon_theta(x_k, k) trained with the loss ||epsilon - epsilon_theta||^2,
eq. (noise-loss) (Ho et al. 2020), predicts that noise; it is a scaled score,
s = -epsilon / std, eq. (score-noise-link).

Notation: epsilon is standard normal noise, the argument `noise` (`eps` in `noise_loss`
and `score_from_noise`, where it is the same epsilon, not the smallest time t_min); T is
the number of forward steps. Shapes: batches x have shape (N, d), d the data
dimension (any shape works where noted); a schedule `betas` has shape (T,), index k - 1
holding beta_k. The book writes alpha_k for the product (the DDPM papers write alpha-bar_k,
hence the argument name `alpha_bar_t`); in continuous time it becomes m_t^2, the squared
mean coefficient of the VP SDE, eq. (vp-sde).
"""

from __future__ import annotations

import torch

from sbgm_edu._checks import check_positive_int, check_tensor

Coefficient = float | torch.Tensor
"""A schedule value: a float, a 0-d tensor, or a tensor of shape (N,) (one per row of a batch)."""


def _coefficient(
    value: Coefficient, name: str, x: torch.Tensor, low: float, high: float, closed_high: bool
) -> torch.Tensor:
    """Check low < value < high (or <= high) and return it shaped to broadcast against x (N, ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(value).__name__}")
    v = torch.as_tensor(value, dtype=x.dtype if x.is_floating_point() else torch.float64)
    if v.ndim > 1:
        raise ValueError(f"{name} must be a float or a tensor of shape (N,), got shape {tuple(v.shape)}")
    upper_ok = (v <= high) if closed_high else (v < high)
    bad = ~(torch.isfinite(v) & (v > low) & upper_ok)
    if bad.any():
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must lie in ({low}, {high}{bracket}, got {v[bad].flatten()[0].item()}")
    if v.ndim == 1:
        if x.ndim == 0 or v.shape[0] != x.shape[0]:
            raise ValueError(
                f"{name} has {v.shape[0]} values but the batch has shape {tuple(x.shape)}; they must match"
            )
        v = v.reshape(-1, *([1] * (x.ndim - 1)))
    return v


def _same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")


def linear_beta_schedule(n_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02) -> torch.Tensor:
    """The linear schedule of Ho et al. (2020): beta_k evenly spaced from beta_min to beta_max.

    Args:
        n_steps: the number of forward steps T (>= 1).
        beta_min, beta_max: first and last beta, with 0 < beta_min <= beta_max < 1.

    Returns:
        betas, a float64 tensor of shape (T,); betas[k - 1] is beta_k of eq. (forward-discrete).
    """
    check_positive_int(n_steps, "n_steps")
    for name, value in (("beta_min", beta_min), ("beta_max", beta_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float in (0, 1), got {value!r}")
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if beta_min > beta_max:
        raise ValueError(f"beta_min must be <= beta_max, got beta_min={beta_min} > beta_max={beta_max}")
    return torch.linspace(beta_min, beta_max, n_steps, dtype=torch.float64)


def check_betas(betas: torch.Tensor, name: str = "betas") -> torch.Tensor:
    """Check that `betas` is a 1-D floating tensor of shape (T,) with every entry in (0, 1)."""
    check_tensor(betas, name, ndim=1)
    if betas.numel() == 0:
        raise ValueError(f"{name} must hold at least one step, got shape {tuple(betas.shape)}")
    bad = (betas <= 0) | (betas >= 1)
    if bad.any():
        raise ValueError(f"{name} must lie in (0, 1), got {betas[bad][0].item()}")
    return betas


def forward_step(x_prev: torch.Tensor, beta: Coefficient, noise: torch.Tensor) -> torch.Tensor:
    """One step of the forward process, eq. (forward-discrete).

    x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) epsilon_k.

    Args:
        x_prev: x_{k-1}, shape (N, d) (any shape).
        beta: beta_k in (0, 1): a float, or a tensor of shape (N,) (one beta per row).
        noise: epsilon_k ~ N(0, I), the shape of x_prev.

    Returns:
        x_k, the shape of x_prev.
    """
    check_tensor(x_prev, "x_prev")
    check_tensor(noise, "noise")
    _same_shape(x_prev, noise, "x_prev", "noise")
    b = _coefficient(beta, "beta", x_prev, 0.0, 1.0, closed_high=False)
    return torch.sqrt(1 - b) * x_prev + torch.sqrt(b) * noise


def simulate_forward(
    x0: torch.Tensor,
    betas: torch.Tensor,
    generator: torch.Generator | None = None,
    return_path: bool = False,
) -> torch.Tensor:
    """Run the forward chain step by step, eq. (forward-discrete), with fresh noise at each step.

    Args:
        x0: data, shape (N, d) (any shape).
        betas: the schedule, shape (T,).
        generator: a torch.Generator for reproducible noise.
        return_path: if True, return all states x_0, ..., x_T, shape (T + 1, N, d).

    Returns:
        x_T, the shape of x0 (or the path).
    """
    check_tensor(x0, "x0")
    check_betas(betas)
    x = x0
    path = [x0]
    for beta in betas.tolist():
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = forward_step(x, beta, noise)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """alpha_k = prod_{j <= k} (1 - beta_j) for k = 1, ..., T, eq. (closed-form-marginal).

    Args:
        betas: the schedule, shape (T,), entries in (0, 1).

    Returns:
        alphas of shape (T,); alphas[k - 1] is alpha_k. It decreases from 1 - beta_1 towards 0.
    """
    check_betas(betas)
    return torch.cumprod(1 - betas, dim=0)


def sample_xt(x0: torch.Tensor, alpha_bar_t: Coefficient, noise: torch.Tensor) -> torch.Tensor:
    """Jump straight to step k: x_k = sqrt(alpha_k) x_0 + sqrt(1 - alpha_k) epsilon, eq. (closed-form-marginal).

    Args:
        x0: data, shape (N, d) (any shape).
        alpha_bar_t: alpha_k in (0, 1]: a float, or a tensor of shape (N,) (one per row).
        noise: epsilon ~ N(0, I), the shape of x0.

    Returns:
        x_k, the shape of x0; in distribution the same as k steps of `forward_step`.
    """
    check_tensor(x0, "x0")
    check_tensor(noise, "noise")
    _same_shape(x0, noise, "x0", "noise")
    a = _coefficient(alpha_bar_t, "alpha_bar_t", x0, 0.0, 1.0, closed_high=True)
    return torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise


def x0_from_noise(xt: torch.Tensor, alpha_bar_t: Coefficient, noise: torch.Tensor) -> torch.Tensor:
    """Invert eq. (closed-form-marginal) given the noise: x_0 = (x_k - sqrt(1 - alpha_k) epsilon) / sqrt(alpha_k).

    Eq. (x0-from-noise). With a predicted noise epsilon_theta(x_k, k) in place of epsilon
    this is the network's guess of the clean data.

    Args:
        xt: x_k, shape (N, d) (any shape).
        alpha_bar_t: alpha_k in (0, 1]: a float, or a tensor of shape (N,).
        noise: epsilon (or a prediction of it), the shape of xt.

    Returns:
        x_0, the shape of xt.
    """
    check_tensor(xt, "xt")
    check_tensor(noise, "noise")
    _same_shape(xt, noise, "xt", "noise")
    a = _coefficient(alpha_bar_t, "alpha_bar_t", xt, 0.0, 1.0, closed_high=True)
    return (xt - torch.sqrt(1 - a) * noise) / torch.sqrt(a)


def noise_loss(eps: torch.Tensor, eps_pred: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The DDPM noise-prediction loss ||epsilon - epsilon_theta(x_k, k)||^2 (Ho et al. 2020), eq. (noise-loss).

    Args:
        eps: the noise epsilon that made x_k, shape (N, d) (or (N, ...)).
        eps_pred: the prediction epsilon_theta(x_k, k), the shape of eps.
        reduction: "mean" averages the per-example squared norms over the batch
            (a 0-d tensor); "none" returns them, shape (N,).

    Returns:
        The loss: squared error summed over all but the first axis, then reduced.
    """
    check_tensor(eps, "eps")
    check_tensor(eps_pred, "eps_pred")
    _same_shape(eps, eps_pred, "eps", "eps_pred")
    if eps.ndim < 1:
        raise ValueError("eps must have a batch axis, shape (N, ...), got a 0-d tensor")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    per_example = ((eps - eps_pred) ** 2).reshape(eps.shape[0], -1).sum(dim=1)
    return per_example.mean() if reduction == "mean" else per_example


def score_from_noise(eps: torch.Tensor, std: Coefficient) -> torch.Tensor:
    """The score of N(mean, std^2 I) at x = mean + std epsilon is -epsilon / std, eq. (score-noise-link).

    So a noise predictor epsilon_theta and a score model s_theta carry the same
    information: s_theta = -epsilon_theta / std (for the discrete process std = sqrt(1 - alpha_k)).

    Args:
        eps: the noise epsilon (or a noise prediction), shape (N, d) (any shape).
        std: std > 0: a float, or a tensor of shape (N,).

    Returns:
        The score, the shape of eps.
    """
    check_tensor(eps, "eps")
    s = _coefficient(std, "std", eps, 0.0, float("inf"), closed_high=False)
    return -eps / s


def noise_from_score(score: torch.Tensor, std: Coefficient) -> torch.Tensor:
    """The inverse of `score_from_noise`: epsilon = -std * score, eq. (score-noise-link).

    Args:
        score: a score, shape (N, d) (any shape).
        std: std > 0: a float, or a tensor of shape (N,).

    Returns:
        The noise, the shape of score.
    """
    check_tensor(score, "score")
    s = _coefficient(std, "std", score, 0.0, float("inf"), closed_high=False)
    return -s * score
