"""Checkers for the book's exercises.

When an exercise asks a reader to write a function, the chapter gives a one-line
check: `check_against_reference(their_fn, reference_fn, make_inputs)` runs both
on several random inputs and reports, in plain words, the first difference it
finds. It never passes a wrong answer:

- the kinds of number must agree (a float answer to a float question, an integer
  answer to an integer question): 1.9 is not accepted for 1, and 1 is not
  accepted for 1.0 either, because an integer result usually means a lost
  fraction;
- the shapes must agree exactly (no broadcasting: (N, 1) is not (N,));
- every entry must be finite;
- floating results are compared in their common floating dtype (float32 against
  float64 is compared in float64, so neither side is rounded to the other's
  precision before the comparison), with `torch.allclose(rtol, atol)`; integer and
  boolean results must be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class ExerciseMismatch(AssertionError):
    """Raised when a reader's function differs from the reference."""


def _kind(dtype: torch.dtype) -> str:
    """The kind of number a dtype holds: "bool", "integer", "floating" or "complex"."""
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating"
    return "integer"


def _as_result_tensor(value: Any, who: str) -> torch.Tensor:
    """A function's result as a tensor with the dtype kind it really has.

    Python floats and NumPy float arrays become float64 (never float32, which would
    round them), Python ints int64. Raises ExerciseMismatch if `value` is not numeric.
    """
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"dtype {array.dtype}")
        return torch.from_numpy(np.array(array))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ExerciseMismatch(f"{who} returned {type(value).__name__}, expected a tensor of numbers") from err


def compare_results(got: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-6, name: str = "your function") -> None:
    """Raise ExerciseMismatch unless `got` matches the reference result `want`.

    Args:
        got: the reader's result (tensor, NumPy array or Python number).
        want: the reference result; it must be finite.
        rtol, atol: tolerances of `torch.allclose`, used for floating and complex results.
        name: what to call the reader's function in messages.

    Raises:
        ExerciseMismatch: different kind of number (e.g. an int for a float), different
            shape, NaN or inf, or a value off by more than the tolerance (with where).
        ValueError: if the reference result holds NaN or inf (choose other inputs).
    """
    want = _as_result_tensor(want, "the reference")
    got = _as_result_tensor(got, name)
    if not torch.isfinite(want).all():
        raise ValueError("the reference returned NaN or inf: make_inputs must give inputs where it is finite")
    if _kind(got.dtype) != _kind(want.dtype):
        raise ExerciseMismatch(
            f"{name} returned {_kind(got.dtype)} numbers (dtype {got.dtype}), "
            f"expected {_kind(want.dtype)} numbers (dtype {want.dtype})"
        )
    if got.shape != want.shape:
        raise ExerciseMismatch(f"{name} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        raise ExerciseMismatch(f"{name} returned NaN or inf in {bad} of {got.numel()} entries")
    common = torch.promote_types(got.dtype, want.dtype)
    got, want = got.to(common), want.to(common)
    if _kind(common) in ("bool", "integer"):
        close = torch.equal(got, want)
    else:
        close = torch.allclose(got, want, rtol=rtol, atol=atol)
    if not close:
        _raise_largest_difference(got, want, name)


def _raise_largest_difference(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    """Raise ExerciseMismatch naming the largest difference, its index and both values."""
    if _kind(got.dtype) in ("bool", "integer"):
        got, want = got.to(torch.float64), want.to(torch.float64)
    err = (got - want).abs()
    where = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape)) if err.ndim else ()
    raise ExerciseMismatch(
        f"{name} differs from the reference by up to {err.max().item():.3g} at index {where} "
        f"(got {got[where].item():.6g}, expected {want[where].item():.6g})"
    )


def check_against_reference(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    make_inputs: Callable[[torch.Generator], tuple],
    trials: int = 5,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
    name: str | None = None,
) -> str:
    """Compare `candidate(*args)` with `reference(*args)` on `trials` random inputs.

    Each comparison is `compare_results` (see the module docstring for the rules).

    Args:
        candidate: the reader's function.
        reference: the book's function (usually from `sbgm_edu`).
        make_inputs: builds one argument tuple from a torch.Generator.
        trials: how many random inputs to try (>= 1).
        rtol, atol: tolerances of `torch.allclose` (>= 0).
        seed: seed of the generator, so a failure can be repeated.
        name: what to call the function in messages.

    Returns:
        A one-line success message.

    Raises:
        ExerciseMismatch: with the trial and what differs (kind of number, shape, NaN or
            inf, largest error and where).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    for tol, tol_name in ((rtol, "rtol"), (atol, "atol")):
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf"):
            raise ValueError(f"{tol_name} must be a finite float >= 0, got {tol!r}")
    name = name or getattr(candidate, "__name__", "your function")
    generator = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        args = make_inputs(generator)
        want = reference(*args)
        got = candidate(*args)
        try:
            compare_results(got, want, rtol=rtol, atol=atol, name=name)
        except ExerciseMismatch as err:
            raise ExerciseMismatch(f"trial {trial}: {err}") from None
    return f"{name} matches the reference on {trials} random inputs."
