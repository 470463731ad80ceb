"""Argument checks shared by the modules of `sbgm_edu`.

Every public function checks what it is given and raises a `ValueError` or
`TypeError` whose message names the argument and the allowed range, so that a
mistake never turns silently into NaN several steps later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

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
    return check_float(eps, name, 0.0, 1.0, low_open=True, high_open=True)


def check_score_fn(score_fn: object) -> None:
    """Check that `score_fn` can be called as score_fn(x, t)."""
    check_callable(score_fn, "score_fn", "score_fn(x, t)")


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


def _range_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """" > 0", " in [0, 1)" and the like: the allowed range in words."""
    if math.isinf(low) and math.isinf(high):
        return ""
    if math.isinf(high):
        return f" {'>' if low_open else '>='} {low:g}"
    if math.isinf(low):
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_float(value: float, name: str, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False, high_open: bool = False) -> float:
    """Check that `value` is a real number (int or float, not a bool) in the given range; return a float.

    The range is [low, high]; `low_open`/`high_open` exclude an end. NaN and +-inf are always rejected.
    """
    allowed = "a finite float" + _range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_positive_float(value: float, name: str) -> float:
    """Check that `value` is a finite real number > 0; return it as a float."""
    return check_float(value, name, low=0.0, low_open=True)


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Check that `value` is one of the names `choices`; the message lists them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_callable(fn: object, name: str, call: str) -> None:
    """Check that `fn` is callable; `call` shows how it is called (e.g. "score_fn(x, t)")."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {call}, got {type(fn).__name__}")


def check_output_shape(y: object, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """Check that a user callable `name` returned a tensor of exactly `shape` (no silent broadcast)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(y).__name__}")
    if tuple(y.shape) != tuple(shape):
        raise ValueError(f"{name} must return a tensor of shape {tuple(shape)}, got {tuple(y.shape)}")
    return y


class ShapeCheckedScore:
    """score_fn(x, t) that raises if the wrapped score's output is not of x's shape (see `checked_score_fn`)."""

    def __init__(self, score_fn: Callable[[torch.Tensor, Time], torch.Tensor]) -> None:
        self.score_fn = score_fn

    def __call__(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        try:
            y = self.score_fn(x, t)
        except RuntimeError as err:
            if "dtype" not in str(err) and "scalar type" not in str(err):
                raise
            raise TypeError(f"score_fn failed on x of dtype {x.dtype} ({err}); give x the dtype the score "
                            "computes in, e.g. sample(..., dtype=torch.float32) for a float32 network") from err
        return check_output_shape(y, x.shape, "score_fn")


def checked_score_fn(score_fn: object) -> ShapeCheckedScore:
    """Check that `score_fn` is callable and wrap it so that every output must have the shape of x.

    A score of shape (N, 1) for x of shape (N, D) would broadcast silently in x + h s(x, t);
    the wrapper turns that into a ValueError. Wrapping twice wraps once.
    """
    check_score_fn(score_fn)
    return score_fn if isinstance(score_fn, ShapeCheckedScore) else ShapeCheckedScore(score_fn)


def check_noise_levels(sigma: float | torch.Tensor, name: str = "sigma") -> torch.Tensor:
    """Return noise levels sigma~ as a float64 tensor; they must be finite and >= 0."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a tensor of noise levels >= 0, got {type(sigma).__name__}")
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not torch.isfinite(sigma).all() or (sigma < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return sigma


def check_nonempty(x: torch.Tensor, name: str, minimum: int = 1) -> torch.Tensor:
    """Check that the batch `x` (a checked tensor) holds at least `minimum` rows."""
    if x.ndim == 0 or x.shape[0] < minimum:
        raise ValueError(f"{name} must hold at least {minimum} row(s), got shape {tuple(x.shape)}")
    return x


def check_gaussians(mean0: torch.Tensor, cov0: torch.Tensor, mean1: torch.Tensor, cov1: torch.Tensor,
                    names: tuple[str, str, str, str]) -> tuple[torch.Tensor, ...]:
    """Check two Gaussians N(mean0, cov0), N(mean1, cov1) in dimension F; return the four tensors in float64.

    The means must have shape (F,), the covariances (F, F) and be symmetric (to 1e-10 relative): a
    non-symmetric matrix is not a covariance, and the formulas would silently use half of it.
    """
    for tensor, name in zip((mean0, cov0, mean1, cov1), names):
        check_tensor(tensor, name, ndim=1 if name in names[::2] else 2)
    f = mean0.shape[0]
    if f < 1:
        raise ValueError(f"{names[0]} must have at least one entry (dimension F >= 1)")
    if mean1.shape != (f,):
        raise ValueError(f"{names[2]} must have shape ({f},) like {names[0]}, got {tuple(mean1.shape)}")
    for cov, name in ((cov0, names[1]), (cov1, names[3])):
        if cov.shape != (f, f):
            raise ValueError(f"{name} must have shape ({f}, {f}), got {tuple(cov.shape)}")
        cov = cov.to(torch.float64)
        if (cov - cov.T).abs().max() > 1e-10 * cov.abs().max():
            raise ValueError(f"{name} must be symmetric (a covariance), but {name} != {name}.T")
    return tuple(t.to(torch.float64) for t in (mean0, cov0, mean1, cov1))
