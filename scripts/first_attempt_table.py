"""Precompute the measurements of chapter 8, "Why the first attempt fails".

Trains the original configuration of the companion notebook (Tomczak, intro_dgm,
sbgms/sbgm_example.ipynb; `sbgm_edu.recipes.ORIGINAL`) and then the same model with the fixes
applied one at a time, each row a `sbgm_edu.recipes.Recipe` (short runs, fixed seeds, the same
number of optimiser steps for every variant, one thread: deterministic), plus one side experiment
(the original setup with only sigma changed). It samples 1000 digits from each with its sampler at
T = 20, measures them with sbgm_edu.metrics.quality_report against the held-out test digits, and
writes everything chapter 8 shows (metrics, recipes, training time, 16 samples per variant).

The last row of the chain is exactly `sbgm_edu.recipes.BOOK` (600 epochs at batch 128: the same
4800 steps). With the default --epochs it is the shipped checkpoint
(`sbgm_edu.checkpoints.load_pretrained()`, which `scripts/train_pretrained.py` trains from BOOK),
measured like the others; with other --epochs, BOOK is trained for as many steps as the others.
Each row stores its recipe and how it differs from BOOK.

    .venv/bin/python scripts/first_attempt_table.py                  # about 8 minutes; writes _build/first_attempt.json
    .venv/bin/python scripts/first_attempt_table.py --update-book    # ... and book/data/first_attempt.json
    .venv/bin/python scripts/first_attempt_table.py --epochs 5 --out /tmp/quick.json   # a quick check

Every variant's samples are measured in the book's pixel space (x -> 2x/16 - 1): samples of a
model trained on the original's 2x/17 - 1 data are decoded with the original's map first.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import platform
import time
from pathlib import Path

import torch

from sbgm_edu.checkpoints import PRETRAINED_PATH, load_checkpoint
from sbgm_edu.metrics import METRIC_NAMES
from sbgm_edu.recipes import BOOK, ORIGINAL, Recipe, measure_recipe, train_recipe
from sbgm_edu.train import train

ROOT = Path(__file__).resolve().parents[1]
BOOK_TABLE = ROOT / "book" / "data" / "first_attempt.json"
DEFAULT_OUT = ROOT / "_build" / "first_attempt.json"
N_SAMPLES = 1000
N_SHOWN = 16
T = 20
SAMPLE_SEED = 1234
EPOCHS = 150
"""Epochs per variant at batch size 32 (4800 optimiser steps); BOOK's 600 epochs at batch 128 are as many."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: a recipe, and what changes with respect to the row above it."""

    key: str
    label: str
    change: str
    recipe: Recipe
    reuse: str | None = None  # key of the row whose trained model this row samples from
    side: bool = False


def rows(epochs: int = EPOCHS) -> list[Row]:
    """The chain from the original setup to BOOK, then the side experiment."""
    short = dataclasses.replace(ORIGINAL, epochs=epochs)  # a fixed budget instead of up to 1000 epochs
    sampler = dataclasses.replace(short, sampler="euler")
    scorenet = dataclasses.replace(sampler, net="scorenet")
    dsm = dataclasses.replace(scorenet, loss="dsm")
    sigma = dataclasses.replace(dsm, sigma=25.0)
    book = dataclasses.replace(BOOK, epochs=epochs * BOOK.batch_size // short.batch_size)
    return [
        Row("original", "original setup", "OriginalScoreNet, sigma = 1.01, the original's loss as its code computes "
            "it (sbgm_edu.original.original_loss), Adamax, data 2x/17 - 1, original sampler (destination time, g, "
            "T - 1 steps, tanh)", short),
        Row("sampler", "+ Euler sampler of chapter 7", "same trained model; T Euler steps with the score at the "
            "start of each step, g^2, no tanh", sampler, reuse="original"),
        Row("scorenet", "+ ScoreNet", "ScoreNet as in the book's setup (hidden 512, Gaussian part fitted to the "
            "data): time as an input (features of ln sigma_t), scaled input, no clamp", scorenet),
        Row("weight", "+ DSM loss (λ_t = σ_t², per example)", "the book's DSM loss: the same per-example weight "
            "(noise-space error, sigma_t^2 in score space) without the original's batch-wide factor "
            "mean_i sigma_{t_i}^2; validation with lambda_t = sigma_t^2 instead of the proxy's sigma_t^4", dsm),
        Row("sigma", "+ σ = 25", "VE parameter sigma = 25, so that the prior N(0, sigma_1^2 I) matches p_1", sigma),
        Row("final", "+ data map 2x/16 − 1, Adam, EMA, cosine (book's setup)", "data map 2x/16 - 1; Adam lr 2e-3 "
            "with a cosine schedule, batch 128, EMA 0.999 of the weights: sbgm_edu.recipes.BOOK", book),
        Row("sigma_only", "original setup with only σ = 25", "the original setup, only sigma = 25 (and the "
            "eq. (ve-euler-sampler) sampler, since the original's g instead of g^2 is wrong for sigma = 25)",
            dataclasses.replace(sampler, sigma=25.0), side=True),
    ]


def shipped_book_model() -> tuple[torch.nn.Module, object, dict] | None:
    """The shipped checkpoint with its training facts, if it was trained with exactly BOOK's settings."""
    model, sde, settings = load_checkpoint(PRETRAINED_PATH)
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items() if k in BOOK.training()}
    if {**defaults, **settings.get("training", {})} != BOOK.training() or settings.get("init_seed") != BOOK.init_seed:
        return None
    info = {"best_epoch": settings["best_epoch"], "best_val_loss": settings["best_val_loss"], "stopped": "epochs",
            "steps": BOOK.epochs * -(-1000 // BOOK.batch_size), "epochs_run": BOOK.epochs,
            "train_seconds": settings["train_seconds"], "source": "shipped checkpoint (scripts/train_pretrained.py)"}
    return model, sde, info


def train_row(row: Row) -> tuple[torch.nn.Module, object, dict]:
    """Train the row's recipe (or take the shipped checkpoint when the row is exactly BOOK)."""
    if row.recipe == BOOK and (shipped := shipped_book_model()) is not None:
        return shipped
    model, sde, history = train_recipe(row.recipe)
    info = {k: history[k] for k in ("best_epoch", "best_val_loss", "stopped", "steps")}
    info.update(epochs_run=len(history["epoch"]), train_seconds=round(history["seconds"][-1], 1), source="trained")
    return model, sde, info


def measure_rows(table_rows: list[Row]) -> list[dict]:
    """Train (or reuse) and measure every row; print one line per row."""
    models: dict[str, tuple] = {}
    results = []
    for row in table_rows:
        if row.reuse is not None:
            model, sde, info = models[row.reuse]
            info = {**info, "retrained": False}
        else:
            model, sde, info = train_row(row)
            info["retrained"] = info["source"] == "trained"
            models[row.key] = (model, sde, info)
        report, shown = measure_recipe(model, sde, row.recipe, N_SAMPLES, T, SAMPLE_SEED)
        results.append({
            "key": row.key, "label": row.label, "change": row.change, "side": row.side,
            "recipe": dataclasses.asdict(row.recipe),
            "differs_from_book": {k: list(v) for k, v in row.recipe.differences(BOOK).items()},
            "training": info, "metrics": report,
            "samples": [[round(p, 3) for p in r] for r in shown[:N_SHOWN].tolist()],
        })
        print(f"{row.key:>10}: " + ", ".join(f"{k}={report[k]:.3f}" for k in METRIC_NAMES) + f", {info}", flush=True)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="training epochs per variant at batch size 32 (the same number of steps for all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})")
    parser.add_argument("--update-book", action="store_true",
                        help=f"also write the committed table the chapter reads, {BOOK_TABLE}")
    args = parser.parse_args(argv)
    if args.out.resolve() == BOOK_TABLE.resolve() and not args.update_book:
        parser.error(f"--out {args.out} is the committed table: pass --update-book to replace it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)  # faster than 2 threads for these small networks, and steadier
    start = time.perf_counter()
    variants = measure_rows(rows(args.epochs))
    result = {
        "command": "python scripts/first_attempt_table.py" + (f" --epochs {args.epochs}" * (args.epochs != EPOCHS)),
        "epochs_per_variant": args.epochs, "seed": ORIGINAL.seed, "sample_seed": SAMPLE_SEED,
        "n_samples": N_SAMPLES, "T": T, "torch": torch.__version__, "machine": platform.machine(),
        "book_recipe": dataclasses.asdict(BOOK), "total_seconds": round(time.perf_counter() - start, 1),
        "variants": variants,
    }
    text = json.dumps(result, indent=1) + "\n"
    for out in [args.out] + ([BOOK_TABLE] if args.update_book and args.out != BOOK_TABLE else []):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out} ({result['total_seconds']} s)")


if __name__ == "__main__":
    main()
