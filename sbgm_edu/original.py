"""The original notebook, reproduced in one place: its network, loss, sampler, data map and settings.

The companion notebook `sbgms/sbgm_example.ipynb` of J. M. Tomczak's `intro_dgm` repository
(the seed of this book) is rebuilt here, written anew and kept faithful, so that chapter 8
("Why the first attempt fails") can run it and fix it one piece at a time:

- `OriginalScoreNet`: its MLP, with time *added* to the input and the output clamped to [-3, 3]
  (also importable as `sbgm_edu.nets.OriginalScoreNet`);
- `original_loss`: its training loss, exactly as its code computes it, including the
  broadcast of an (N, 1) weight against an (N,) error;
- `original_sample`: its sampler (also importable as `sbgm_edu.sampling.original_sample`);
- `to_original_map` / `from_original_map`: its data map 2x/17 - 1;
- `NOTEBOOK_SETTINGS`: its hyperparameter cell, from which `sbgm_edu.recipes.ORIGINAL` is built
  (the recipe type lives in `sbgm_edu.recipes`, which imports this module).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sbgm_edu._checks import Time, check_eps, check_positive_int, check_score_fn, check_tensor, check_time
from sbgm_edu.data import pixels_to_unit_interval, unit_interval_to_pixels
from sbgm_edu.sde import SDE, ScoreFn, check_sde

ORIGINAL_DATA_MAP = "2x/17-1"
"""The original notebook's map of pixels 0..16 onto [-1, 15/17] (see `sbgm_edu.data.pixels_to_unit_interval`)."""

NOTEBOOK_SETTINGS: dict[str, Any] = {
    "net": "original", "hidden": 512, "sigma": 1.01, "data_map": ORIGINAL_DATA_MAP, "loss": "original",
    "sampler": "original", "epochs": 1000, "patience": 50, "batch_size": 32, "lr": 1e-3, "optimizer": "adamax",
    "ema_decay": None, "lr_schedule": "constant",
}
"""The original's hyperparameter cell (D = 64, M = 512, T = 20, sigma = 1.01, lr = 1e-3, 1000 epochs,
patience 50) and its choices (batch 32, Adamax, no EMA), as fields of `sbgm_edu.recipes.Recipe`."""


def to_original_map(x: torch.Tensor) -> torch.Tensor:
    """Book data (2x/16 - 1) -> the original notebook's 2x/17 - 1, for reproducing its setup."""
    return 2.0 * unit_interval_to_pixels(x) / 17.0 - 1.0


def from_original_map(x: torch.Tensor) -> torch.Tensor:
    """The original's 2x/17 - 1 -> book data 2x/16 - 1, so that both are measured in one pixel space."""
    return pixels_to_unit_interval((x + 1.0) * 17.0 / 2.0)


class OriginalScoreNet(nn.Module):
    """The score network of the original notebook, written anew and kept faithful.

    The original computes `snet(x_t + time_embedding(t))` with
    `time_embedding = Sequential(Linear(1, D), Tanh())` and
    `snet = Linear(D, M), SiLU, Linear(M, M), SiLU, Linear(M, M), SiLU, Linear(M, D), Hardtanh(-3, 3)`
    (M = 512), and trains it so that `snet` approximates the *negative* score
    (its sampler's minus sign compensates). Here `forward` returns the score
    itself, s_theta(x, t) = -snet(x + tanh(W t + b)), so every network of the book
    can be used the same way; the parameters are those of the original.

    Known weaknesses (chapter "Why the first attempt fails"): time is a shift of
    the input, not an input of its own, and the clamp to [-3, 3] cannot
    represent scores of size |noise| / sigma_t > 3 (small sigma_t).

    Args:
        dim: data dimension D (64 for the digits).
        hidden: width M of the hidden layers (512 in the original).
    """

    def __init__(self, dim: int = 64, hidden: int = 512) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.hidden = check_positive_int(hidden, "hidden")
        self.time_embedding = nn.Sequential(nn.Linear(1, dim), nn.Tanh())
        self.snet = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
            nn.Hardtanh(min_val=-3.0, max_val=3.0),
        )

    def settings(self) -> dict:
        """The constructor arguments, stored in checkpoints next to the weights."""
        return {"dim": self.dim, "hidden": self.hidden}

    def forward(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Score estimate s_theta(x, t) = -snet(x + tanh(W t + b)).

        Args:
            x: noisy data x_t, shape (N, dim).
            t: time in [0, 1], a float or an (N,) tensor.

        Returns:
            Shape (N, dim); every entry lies in [-3, 3].
        """
        check_tensor(x, "x", ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        check_time(t)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 1 and t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} times but x has {x.shape[0]} rows; they must match")
        t_embedding = self.time_embedding(t.reshape(-1, 1).expand(x.shape[0], 1))
        return -self.snet(x + t_embedding)


def original_loss(
    model: ScoreFn, x0: torch.Tensor, sde: SDE, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """The original notebook's training loss, exactly as its code computes it (a 0-d tensor).

    Its `SBGM.forward` draws t of shape (N, 1) and computes, with x_pred = -sigma_t snet(...)
    = sigma_t s_theta(x_t, t) and lambda_t = sigma_t^2,

        SM_loss = 0.5 * self.lambda_t(t) * torch.pow(x_pred + x_1, 2).mean(-1)
        loss = SM_loss.mean()

    The weight has shape (N, 1) and the error shape (N,), so their product broadcasts to
    (N, N), whose mean is 1/2 mean_i lambda(t_i) * mean_j e_j with e_j = mean_d (x_pred + noise)^2
    the noise-space error of example j. The per-example weight is lost: every example's
    noise-space error counts equally (score-space weight sigma_t^2, the book's own,
    eq. (dsm-weight)), times a factor mean_i sigma_{t_i}^2 that changes from batch to batch.
    The post's formula (lambda_t on top of the noise-space error, sigma_t^4 in score space,
    `sbgm_edu.losses.proxy_loss_weight`) is what its `log_prob_proxy` computes, at scalar t.

    Args:
        model: s_theta(x, t), e.g. an `OriginalScoreNet` (whose output is -snet).
        x0: data, shape (N, D).
        sde: the forward SDE (the original's is `VESDE(1.01)`): gives sigma_t.
        t: times in (0, 1], shape (N,).
        noise: the original's x_1 ~ N(0, I), shape (N, D).

    Returns:
        The scalar loss, differentiable with respect to the parameters of model.
    """
    check_score_fn(model)
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    check_tensor(noise, "noise", ndim=2)
    if noise.shape != x0.shape or not isinstance(t, torch.Tensor) or t.shape != (x0.shape[0],):
        raise ValueError(f"x0 and noise must have one shape (N, D) and t shape (N,); got x0 {tuple(x0.shape)}, "
                         f"noise {tuple(noise.shape)}, t {getattr(t, 'shape', type(t).__name__)}")
    sigma_t = sde.marginal_std(t).to(x0.dtype)[:, None]  # the original's sigma_fun(t), t of shape (N, 1)
    if not (sigma_t > 0).all():
        raise ValueError("t must be > 0 (sigma_t = 0 at t = 0)")
    x_t = sde.perturb(x0, t, noise)  # sample_p_t: x_0 + sigma_t x_1
    x_pred = sigma_t * model(x_t, t)  # -sigma_t snet(x_t + t_embd) = sigma_t s_theta
    lambda_t = sigma_t**2  # (N, 1)
    sm_loss = 0.5 * lambda_t * torch.pow(x_pred + noise, 2).mean(-1)  # (N, 1) * (N,) -> (N, N)
    return sm_loss.mean()


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
        n, dim: number and dimension of the samples (ints >= 1).
        T: the original's T: number of grid points (int >= 2), so T - 1 steps.
        eps: the last time (the original's EPS = 1e-5).
        generator: torch.Generator for the prior draw.
        apply_tanh: apply the final tanh (True in the original); False shows the raw output.
        return_path: if True, return the states before tanh, shape (T, n, dim).

    Returns:
        Samples of shape (n, dim), or the path.
    """
    check_score_fn(score_fn)
    check_sde(sde)
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")
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


__all__ = [
    "NOTEBOOK_SETTINGS",
    "ORIGINAL_DATA_MAP",
    "OriginalScoreNet",
    "from_original_map",
    "original_loss",
    "original_sample",
    "to_original_map",
]
