"""Checkers for the book's exercises.

When an exercise asks a reader to write a function, the chapter gives a one-line
check: `check_against_reference(their_fn, reference_fn, make_inputs)` runs both
on several random inputs and reports, in plain words, the first difference it
finds (a wrong shape, a NaN, or a value off by more than the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ExerciseMismatch(AssertionError):
    """Raised when a reader's function differs from the reference."""


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

    Args:
        candidate: the reader's function.
        reference: the book's function (usually from `sbgm_edu`).
        make_inputs: builds one argument tuple from a torch.Generator.
        trials: how many random inputs to try (>= 1).
        rtol, atol: tolerances of `torch.allclose`.
        seed: seed of the generator, so a failure can be repeated.
        name: what to call the function in messages.

    Returns:
        A one-line success message.

    Raises:
        ExerciseMismatch: with what differs (shape, NaN, largest error and where).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    name = name or getattr(candidate, "__name__", "your function")
    generator = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        args = make_inputs(generator)
        want = torch.as_tensor(reference(*args))
        got = candidate(*args)
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got, dtype=want.dtype)
            except (TypeError, ValueError, RuntimeError) as err:
                raise ExerciseMismatch(f"{name} returned {type(got).__name__}, expected a tensor") from err
        if got.shape != want.shape:
            raise ExerciseMismatch(
                f"trial {trial}: {name} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            )
        if not torch.isfinite(got).all():
            raise ExerciseMismatch(f"trial {trial}: {name} returned NaN or inf")
        got = got.to(want.dtype)
        if not torch.allclose(got, want, rtol=rtol, atol=atol):
            err = (got - want).abs()
            where = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape)) if err.ndim else ()
            raise ExerciseMismatch(
                f"trial {trial}: {name} differs from the reference by up to {err.max().item():.3g} "
                f"at index {where} (got {got[where].item():.6g}, expected {want[where].item():.6g})"
            )
    return f"{name} matches the reference on {trials} random inputs."
