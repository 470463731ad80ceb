"""The scripts write under _build/ by default; committed or shipped files only when told explicitly."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from benchmarks.run import COMMITTED
from benchmarks.run import parse_args as benchmark_args
from sbgm_edu.checkpoints import PRETRAINED_PATH
from sbgm_edu.recipes import BOOK

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_train_pretrained_never_replaces_the_shipped_checkpoint_unless_told():
    # Before the fix `--epochs 1` alone replaced the 600-epoch model every chapter loads.
    script = load_script("train_pretrained")
    for argv in ([], ["--epochs", "1"]):
        out = script.parse_args(argv).out
        assert out != PRETRAINED_PATH and BUILD in out.parents
    assert script.parse_args(["--update-shipped"]).out == PRETRAINED_PATH
    with pytest.raises(SystemExit):
        script.parse_args(["--out", str(PRETRAINED_PATH)])


def test_first_attempt_table_writes_the_book_table_only_when_told():
    script = load_script("first_attempt_table")
    args = script.parse_args([])
    assert BUILD in args.out.parents and not args.update_book
    assert script.parse_args(["--update-book"]).update_book
    with pytest.raises(SystemExit):
        script.parse_args(["--out", str(script.BOOK_TABLE)])
    rows = script.rows()
    chain = [r for r in rows if not r.side]
    assert chain[-1].recipe == BOOK  # the "book's setup" row is exactly recipes.BOOK
    steps = {r.recipe.epochs * math.ceil(1000 / r.recipe.batch_size) for r in chain}  # 1000 training digits
    assert steps == {4800}  # every variant takes the same number of optimiser steps


def test_benchmarks_write_the_committed_results_only_when_told():
    assert all(BUILD in out.parents for out in benchmark_args([]).outputs)
    assert all(BUILD in out.parents for out in benchmark_args(["--fast"]).outputs)
    assert COMMITTED in benchmark_args(["--update-committed"]).outputs
    with pytest.raises(SystemExit):
        benchmark_args(["--out", str(COMMITTED)])
