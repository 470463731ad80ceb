"""The exercise checker never passes a wrong answer, and passes right ones.

Wrong answers of every kind: a small float error, a float answer to an integer question
(1.9 for 1) and the reverse, a wrong shape (also one that would broadcast), NaN, inf, a
non-numeric result. Right answers: the same values in float32 against a float64
reference (compared in float64), NumPy arrays and Python numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbgm_edu.exercises import ExerciseMismatch, check_against_reference, compare_results

F64 = torch.float64


def _vector(generator: torch.Generator) -> tuple:
    return (torch.randn(7, generator=generator, dtype=F64),)


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x


def _count_positive(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).sum()  # int64, 0-d


def test_right_answers_pass():
    assert "matches the reference on 5" in check_against_reference(lambda x: x + x, _double, _vector)
    # float32 against a float64 reference: compared in float64, within float32 rounding (~6e-8 relative)
    check_against_reference(lambda x: 2.0 * x.float(), _double, _vector, rtol=1e-6, atol=0.0)
    # NumPy arrays and Python numbers are accepted with their real dtype (float64, int64)
    check_against_reference(lambda x: 2.0 * x.numpy(), _double, _vector, rtol=0.0, atol=0.0)
    check_against_reference(lambda x: float(x.sum()), lambda x: x.sum(), _vector, rtol=0.0, atol=0.0)
    check_against_reference(lambda x: int((x > 0).sum()), _count_positive, _vector)
    check_against_reference(lambda x: (x > 0).to(torch.int32).sum(), _count_positive, _vector)  # int32 vs int64


def test_small_float_error_is_caught_with_where_and_how_much():
    def off_by_a_little(x: torch.Tensor) -> torch.Tensor:
        out = 2.0 * x
        out[3] += 1e-3
        return out

    with pytest.raises(ExerciseMismatch, match=r"trial 0: off_by_a_little differs .* by up to 0\.001 at index \(3,\)"):
        check_against_reference(off_by_a_little, _double, _vector)


def test_float32_rounding_is_not_hidden_by_a_float32_reference():
    # reference in float32, answer in float64 off by 1e-9 relative: compared in float64, not rounded away
    def reference(x: torch.Tensor) -> torch.Tensor:
        return x.float()

    with pytest.raises(ExerciseMismatch, match="differs"):
        check_against_reference(lambda x: x.float().double() * (1 + 1e-6), reference, _vector, rtol=1e-7, atol=0.0)


@pytest.mark.parametrize(
    "answer, want",
    [
        (torch.tensor(1.9), "floating numbers .* expected integer numbers"),  # would cast to 1
        (torch.tensor(1.0), "floating numbers .* expected integer numbers"),  # right value, lost kind
        (1.9, "floating numbers .* expected integer numbers"),
        (torch.tensor(True), "bool numbers .* expected integer numbers"),
        (torch.tensor(1 + 0j), "complex numbers .* expected integer numbers"),
    ],
    ids=["1.9-for-1", "1.0-for-1", "python-float", "bool", "complex"],
)
def test_wrong_kind_of_number_for_an_integer_reference(answer, want):
    with pytest.raises(ExerciseMismatch, match=want):
        compare_results(answer, torch.tensor(1), name="answer")


def test_integer_answer_to_a_float_question_is_caught():
    with pytest.raises(ExerciseMismatch, match=r"integer numbers \(dtype torch.int64\), expected floating"):
        check_against_reference(lambda x: torch.round(2.0 * x).long(), _double, _vector)


def test_wrong_integer_value_is_caught():
    with pytest.raises(ExerciseMismatch, match=r"by up to 1 at index \(\) \(got 8, expected 7\)"):
        compare_results(torch.tensor(8), torch.tensor(7))


@pytest.mark.parametrize(
    "answer",
    [lambda x: 2.0 * x[:, None], lambda x: 2.0 * x[:6], lambda x: (2.0 * x).sum(), lambda x: 2.0 * x[None]],
    ids=["(N,1)-broadcasts", "too-short", "scalar", "(1,N)"],
)
def test_wrong_shape_is_caught(answer):
    with pytest.raises(ExerciseMismatch, match=r"returned shape .* expected \(7,\)"):
        check_against_reference(answer, _double, _vector)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_caught(bad):
    def answer(x: torch.Tensor) -> torch.Tensor:
        out = 2.0 * x
        out[0] = bad
        return out

    with pytest.raises(ExerciseMismatch, match="NaN or inf in 1 of 7 entries"):
        check_against_reference(answer, _double, _vector)


def test_the_failing_trial_is_named():
    calls = {"n": 0}

    def wrong_on_the_third_call(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return 2.0 * x + (1.0 if calls["n"] == 3 else 0.0)

    with pytest.raises(ExerciseMismatch, match="^trial 2: "):
        check_against_reference(wrong_on_the_third_call, _double, _vector)


def test_non_numeric_answer_is_caught():
    with pytest.raises(ExerciseMismatch, match="returned str, expected a tensor of numbers"):
        check_against_reference(lambda x: "twice x", _double, _vector)
    with pytest.raises(ExerciseMismatch, match="returned NoneType"):
        check_against_reference(lambda x: None, _double, _vector)


def test_non_finite_reference_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="the reference returned NaN or inf"):
        compare_results(np.array([1.0]), np.array([math.nan]))
    with pytest.raises(ValueError, match="trials must be an int >= 1"):
        check_against_reference(_double, _double, _vector, trials=0)
    with pytest.raises(ValueError, match="rtol must be a finite float >= 0"):
        check_against_reference(_double, _double, _vector, rtol=-1e-5)
    with pytest.raises(ValueError, match="atol must be a finite float >= 0"):
        check_against_reference(_double, _double, _vector, atol=math.nan)
