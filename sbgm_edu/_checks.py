"""Argument checks shared by the modules of `sbgm_edu`.

Every public function checks what it is given and raises a `ValueError` or
`TypeError` whose message names the argument and the allowed range, so that a
mistake never turns silently into NaN several steps later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Time = float | torch.Tensor


def check_tensor(x: torch.Tensor, name: str, ndim: int | None = None) -> torch.Tensor:
    """Check that `x` is a finite floating-point tensor (with `ndim` dimensions if given)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, but it holds NaN or inf")
    return x


def check_positive_int(n: int, name: str, minimum: int = 1) -> int:
    """Check that `n` is an int (not a bool) with n >= minimum."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {n!r}")
    if n < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {n}")
    return n


def check_eps(eps: float, name: str = "eps") -> float:
    """Check that the smallest time `eps` is a float in (0, 1); return it as a float."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and 0.0 < eps < 1.0):
        raise ValueError(f"{name} must be a float in (0, 1), got {eps!r}")
    return float(eps)


def check_score_fn(score_fn: object) -> None:
    """Check that `score_fn` can be called as score_fn(x, t)."""
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")


def check_time_grid(ts: Sequence[float] | torch.Tensor, name: str = "ts") -> torch.Tensor:
    """Return `ts` as a 1-D float64 tensor; it must have >= 2 finite, strictly monotone entries."""
    ts = torch.as_tensor(ts, dtype=torch.float64)
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 times, got shape {tuple(ts.shape)}")
    if not torch.isfinite(ts).all():
        raise ValueError(f"{name} must be finite, but it holds NaN or inf")
    steps = ts[1:] - ts[:-1]
    if not ((steps > 0).all() or (steps < 0).all()):
        raise ValueError(f"{name} must be strictly monotone (strictly increasing or strictly decreasing)")
    return ts


def check_time(t: Time, name: str = "t", low: float = 0.0, high: float = 1.0) -> None:
    """Check that every time in `t` (float or 1-D tensor) is finite and in [low, high]."""
    if isinstance(t, torch.Tensor):
        if t.ndim > 1:
            raise ValueError(f"{name} must be a float or a 1-D tensor of shape (N,), got shape {tuple(t.shape)}")
        bad = ~torch.isfinite(t) | (t < low) | (t > high)
        if bad.any():
            raise ValueError(f"{name} must lie in [{low}, {high}], got {t[bad][0].item()}")
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        if not (math.isfinite(t) and low <= t <= high):
            raise ValueError(f"{name} must lie in [{low}, {high}], got {t}")
    else:
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(t).__name__}")


def time_column(t: Time, x: torch.Tensor) -> torch.Tensor:
    """Return `t` as a tensor that broadcasts against the batch `x` of shape (N, ...).

    A float becomes a 0-d tensor; a tensor of shape (N,) becomes (N, 1, ..., 1).
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 1:
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} times but x has {x.shape[0]} rows; they must match")
        t = t.reshape(-1, *([1] * (x.ndim - 1)))
    return t
