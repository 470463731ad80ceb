"""Measure the book's claims on this machine: build time, training, sampling, solver accuracy.

    python -m benchmarks                      # full run, writes _build/benchmarks/results.json and .md
    python -m benchmarks --update-committed   # full run, also writes benchmarks/results.json and results.md
    python -m benchmarks --fast               # smoke run for CI: tiny training, one repeat, writes under _build/

Each figure that is a time is the median over repeats; the number of repeats is stored next to it.
Training and sampling run on one CPU thread (the setting the recipes were tuned for; say so if you
change it). The book's appendix page includes benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sbgm_edu.checkpoints import load_pretrained
from sbgm_edu.metrics import METRIC_NAMES
from sbgm_edu.recipes import RECIPES, measure_recipe, train_recipe
from sbgm_edu.sampling import sample
from sbgm_edu.sde import VESDE
from sbgm_edu.solver_study import COMPARED_METHODS, COMPARED_NFES, CountingScore, error_vs_nfe, reference_problems
from sbgm_edu.solvers import REGISTRY, distinct_solvers

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLING_SOLVERS = tuple(distinct_solvers())  # every solver of the registry, without aliases ("ddim")


def median_time(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Run fn `repeats` times; return the median and every run's wall time in seconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "runs_s": runs, "repeats": repeats}


def run_command(cmd: list[str]) -> None:
    """Run a command from the repository root; fail loudly, with its output, if it fails."""
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def machine_info() -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def bench_book(fast: bool, repeats: int) -> dict[str, Any]:
    """Wall time of a full book build (every notebook executed, fresh cache) and of nbval over all chapters."""
    if fast:  # CI already builds the book and runs nbval; here only check that the timing code works
        nbval = median_time(lambda: run_command([str(BIN / "pytest"), "book/ch02_ode_euler.ipynb",
                                                 "--nbval-lax", "-q"]), 1)
        return {"build": None, "nbval": {**nbval, "what": "nbval of chapter 2 only (fast mode)"}}

    def build() -> None:
        with tempfile.TemporaryDirectory() as out:  # a fresh cache, so every notebook runs
            run_command([str(BIN / "jupyter-book"), "build", ".", "-W", "-n", "--keep-going", "--path-output", out])

    return {
        "build": {**median_time(build, repeats), "what": "jupyter-book build . -W -n (all chapters executed)"},
        "nbval": {**median_time(lambda: run_command([str(BIN / "pytest"), "book", "--nbval-lax", "-q"]), repeats),
                  "what": "pytest book --nbval-lax (all chapters)"},
    }


def bench_training(fast: bool) -> dict[str, Any]:
    """Train the original and the book's recipe in this run, each to its own stopping point; measure at T = 20."""
    rows = {}
    for name, recipe in RECIPES.items():
        model, sde, history = train_recipe(recipe, epochs=2 if fast else None)
        report, _ = measure_recipe(model, sde, recipe, n=200 if fast else 1000, steps=20)
        rows[name] = {
            "train_seconds": history["seconds_total"],
            "epochs_run": len(history["epoch"]),
            "stopped": history["stopped"],
            "best_epoch": history["best_epoch"],
            "best_val_loss": history["best_val_loss"],
            "optimizer_steps": history["steps"],
            "metrics": report,
        }
    ratios = {"train_seconds": rows["book"]["train_seconds"] / rows["original"]["train_seconds"]}
    for name in METRIC_NAMES:
        if rows["original"]["metrics"][name]:
            ratios[name] = rows["book"]["metrics"][name] / rows["original"]["metrics"][name]
    return {"recipes": rows, "book_over_original": ratios, "samples": 200 if fast else 1000, "T": 20}


def bench_sampling(repeats: int) -> dict[str, Any]:
    """Time to draw 64 digits with the shipped model at T = 20 steps, per solver (uniform grid in t)."""
    model, sde = load_pretrained()
    rows = {}
    for solver in SAMPLING_SOLVERS:
        counter = CountingScore(model)
        sample(counter, sde, 64, 64, 20, solver=solver, generator=torch.Generator().manual_seed(0))
        timing = median_time(lambda s=solver: sample(model, sde, 64, 64, 20, solver=s,
                                                     generator=torch.Generator().manual_seed(0)), repeats)
        rows[solver] = {**timing, "steps": 20, "nfe": counter.calls, "label": REGISTRY[solver].label,
                        "evaluations_per_step": REGISTRY[solver].evaluations_per_step}
    return rows


def bench_solver_error(fast: bool) -> dict[str, Any]:
    """Chapter 9's error against NFE on the two exact-score problems (`sbgm_edu.solvers.error_vs_nfe`)."""
    sde = VESDE(25.0)  # as in chapter 9: the same prior draws (seed 0) and methods
    n, nfes = (20, [4, 10]) if fast else (200, COMPARED_NFES)
    x1 = sde.sample_prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # as chapter 9
    table = error_vs_nfe(reference_problems(sde, x1), sde, x1, COMPARED_METHODS, nfes)
    return {"n_points": n, "nfes": nfes, "sigma": sde.sigma,
            "rows": [{"problem": p, "solver": s, "grid": g, "nfe_error": rows} for (p, s, g), rows in table.items()]}


def to_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (the book's appendix includes this file)."""
    m = results["machine"]
    lines = [
        f"Measured on {m['date']} with `{results['command']}`: {m['cpu_count']} CPUs ({m['processor']}), "
        f"Python {m['python']}, torch {m['torch']}; training and sampling on {results['threads']} thread(s). "
        f"Full run took {results['total_seconds'] / 60:.1f} minutes.",
        "",
        "**Book.** Wall time, median over repeats.",
        "",
        "| what | median (s) | repeats |",
        "|---|---:|---:|",
    ]
    for key in ("build", "nbval"):
        row = results.get("book", {}).get(key)
        if row is not None:
            lines.append(f"| {row['what']} | {row['median_s']:.1f} | {row['repeats']} |")
    if "training" not in results:
        return "\n".join(lines + ["", "(the run had not finished: later sections are missing)"]) + "\n"
    tr = results["training"]
    lines += ["", f"**Training**, each recipe to its own stopping point, then {tr['samples']} samples at "
              f"T = {tr['T']} measured against the test digits (floors: real training digits).", "",
              "| | original | book | book / original | real-data floor |", "|---|---:|---:|---:|---:|"]
    o, b = tr["recipes"]["original"], tr["recipes"]["book"]
    lines.append(f"| training time (s) | {o['train_seconds']:.1f} | {b['train_seconds']:.1f} | "
                 f"{tr['book_over_original']['train_seconds']:.2f} | |")
    lines.append(f"| epochs run (stopped by) | {o['epochs_run']} ({o['stopped']}) | "
                 f"{b['epochs_run']} ({b['stopped']}) | | |")
    for name in METRIC_NAMES:
        ratio = tr["book_over_original"].get(name)
        lines.append(f"| {name} | {o['metrics'][name]:.3f} | {b['metrics'][name]:.3f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} | {b['metrics'][name + '_floor']:.3f} |")
    lines += ["", "**Sampling** 64 digits with the shipped model, T = 20 steps on the uniform grid in t.", "",
              "| solver | score evaluations | median time (s) | repeats |", "|---|---:|---:|---:|"]
    for solver, row in results["sampling"].items():
        lines.append(f"| {solver} | {row['nfe']} | {row['median_s']:.3f} | {row['repeats']} |")
    err = results["solver_error"]
    lines += ["", f"**Solver error** at t = eps against the number of score evaluations (chapter 9), RMS error / "
              f"data scale, {err['n_points']} prior draws, VE sigma = {err['sigma']:g}.", "",
              "| problem | solver, grid | " + " | ".join(f"NFE {n}" for n in err["nfes"]) + " |",
              "|---|---|" + "---:|" * len(err["nfes"])]
    for row in err["rows"]:
        cells = " | ".join(f"{e:.1e} ({n})" if n != want else f"{e:.1e}"
                           for (n, e), want in zip(row["nfe_error"], err["nfes"]))
        lines.append(f"| {row['problem']} | {row['solver']}, {row['grid']} | {cells} |")
    lines += ["", "A cell shows the error; a number in brackets is the counted NFE where it differs from the column's."]
    return "\n".join(lines) + "\n"


COMMITTED = ROOT / "benchmarks" / "results.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; args.outputs lists the results.json paths to write (the committed one only when asked)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="smoke run for CI (tiny training, one repeat)")
    parser.add_argument("--out", type=Path, help="results.json path (default _build/benchmarks/results.json, "
                        "or _build/benchmarks-fast/results.json with --fast)")
    parser.add_argument("--update-committed", action="store_true",
                        help=f"also write the committed {COMMITTED} and its .md (not with --fast)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each timing (default 5 for sampling, "
                        "1 for the book build and nbval; 1 in fast mode)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and sampling")
    args = parser.parse_args(argv)
    if args.update_committed and args.fast:
        parser.error("--update-committed needs a full run, not --fast")
    out = args.out or ROOT / "_build" / ("benchmarks-fast" if args.fast else "benchmarks") / "results.json"
    if out.resolve() == COMMITTED.resolve() and not args.update_committed:
        parser.error(f"--out {out} is the committed result: pass --update-committed instead")
    args.outputs = [out] + ([COMMITTED] if args.update_committed and out.resolve() != COMMITTED.resolve() else [])
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sampling_repeats = args.repeats or (1 if args.fast else 5)
    results: dict[str, Any] = {
        "command": "python -m benchmarks" + (" --fast" if args.fast else ""),
        "fast": args.fast,
        "threads": args.threads,
        "machine": machine_info(),
    }
    steps = [("solver_error", lambda: bench_solver_error(args.fast)),
             ("sampling", lambda: bench_sampling(sampling_repeats)),
             ("training", lambda: bench_training(args.fast)),
             ("book", lambda: bench_book(args.fast, args.repeats or 1))]
    for out in args.outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    for key, fn in steps:
        t0 = time.perf_counter()
        results[key] = fn()
        results["total_seconds"] = time.perf_counter() - start
        # save after every step: the book build (last) includes results.md, and a crash keeps what was measured
        for out in args.outputs:
            out.write_text(json.dumps(results, indent=1) + "\n")
            out.with_suffix(".md").write_text(to_markdown(results))
        print(f"[benchmarks] {key}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"[benchmarks] wrote {', '.join(map(str, args.outputs))} (and .md) in {results['total_seconds']:.0f} s")
    return results
