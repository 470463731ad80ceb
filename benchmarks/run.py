"""Measure the book's claims on this machine: build time, training, sampling, solver accuracy, likelihood.

    python -m benchmarks                      # full run, writes _build/benchmarks/results.json and .md
    python -m benchmarks --update-committed   # full run, also writes benchmarks/results.json and results.md
    python -m benchmarks --fast               # smoke run for CI: tiny training, one repeat, writes under _build/
    python -m benchmarks --only solver_error,likelihood --update-committed   # refresh two sections only

Steps: solver_error, sampling, likelihood, training, book. With --only, the other sections of the
results.json written to are kept as they were; each section records its own date, command and
machine, and results.md prints them under the section.

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

from sbgm_edu.baselines import (
    dequantized_split,
    fit_gaussian_mixture,
    mean_and_standard_error,
    select_gaussian_mixture,
    sklearn_log_prob,
    uniform_log_prob,
)
from sbgm_edu.checkpoints import load_pretrained
from sbgm_edu.likelihood import DIGITS_BIN_WIDTH, bits_per_dim, log_prob
from sbgm_edu.metrics import METRIC_NAMES, quality_report
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


LIKELIHOOD_MODELS = ("unconditional", "likelihood")
"""The `load_pretrained` names compared: the book's model and the one trained for likelihood."""


def score_model_bits_per_dim(y: torch.Tensor, steps: tuple[int, ...], batch: int = 112) -> dict[str, Any]:
    """Bits/dim of the shipped score models on the dequantised test digits y (N, 64), per RK4 step count.

    ln p by the PF-ODE (`sbgm_edu.likelihood.log_prob`, eq. (instantaneous-cov): RK4 on the log-SNR
    grid, exact divergence, float64), then eq. (ch10-bpd); as scripts/digits_bits_per_dim.py.
    """
    rows: dict[str, Any] = {}
    for name in LIKELIHOOD_MODELS:
        model, sde = load_pretrained(name)
        model = model.double()
        rows[name] = {}
        for n_steps in steps:
            start = time.perf_counter()
            log_p = torch.cat([log_prob(model, sde, y[i : i + batch], steps=n_steps)
                               for i in range(0, y.shape[0], batch)])
            mean, standard_error = mean_and_standard_error(bits_per_dim(log_p, y.shape[1]))
            rows[name][str(n_steps)] = {"bits_per_dim": mean, "standard_error": standard_error,
                                        "seconds": time.perf_counter() - start}
    return rows


def baseline_bits_per_dim(y: torch.Tensor, fast: bool) -> dict[str, Any]:
    """Bits/dim on y of the cheap classical baselines (`sbgm_edu.baselines`), fitted on train, selected on val.

    Uniform (log2 17), full-covariance Gaussian, Gaussian mixture with K in 1..10 chosen on the
    validation digits; fitted on 10 dequantisation draws of each training digit (seed 0), as
    scripts/digits_bits_per_dim.py. The KDE is left out: it is slow (the script measures it).
    """
    draws, components, restarts = (1, (1, 2), 1) if fast else (10, tuple(range(1, 11)), 5)
    y_train, y_val = dequantized_split("train", draws, seed=0), dequantized_split("val", 1, seed=1)
    start = time.perf_counter()
    mixture, scores = select_gaussian_mixture(y_train, y_val, components, restarts=restarts)
    gaussian = fit_gaussian_mixture(y_train, 1, restarts=restarts)
    models = {"uniform (17 levels)": uniform_log_prob, "Gaussian, full covariance": sklearn_log_prob(gaussian),
              f"Gaussian mixture (K = {mixture.n_components})": sklearn_log_prob(mixture)}
    rows = {}
    for name, model_log_prob in models.items():
        mean, standard_error = mean_and_standard_error(bits_per_dim(model_log_prob(y), y.shape[1]))
        rows[name] = {"bits_per_dim": mean, "standard_error": standard_error}
    return {"rows": rows, "mixture_validation_bits_per_dim": {str(k): v for k, v in scores.items()},
            "train_draws": draws, "restarts": restarts, "seconds": time.perf_counter() - start}


def bench_likelihood(fast: bool) -> dict[str, Any]:
    """Test bits/dim of the shipped score models and the classical baselines, and the models' samples at T = 20.

    Chapter 10's measurement on the whole test split (447 digits; the chapter scores the first 20):
    one uniform dequantisation draw per digit (seed 2, bin width 2/16), 12 and 24 RK4 steps (24
    are converged to better than 0.01, chapter 10); then `quality_report` of 1000 samples of each
    model at T = 20 Euler steps (seed 3), as in the chapter.
    """
    y = dequantized_split("test", 1, seed=2)
    steps, n_samples = ((2,), 200) if fast else ((12, 24), 1000)
    if fast:
        y = y[:8]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as chapter 10 and the script: everything in float64
    try:
        baselines = baseline_bits_per_dim(y, fast)
        models = score_model_bits_per_dim(y, steps)
        quality = {}
        for name in LIKELIHOOD_MODELS:
            model, sde = load_pretrained(name)
            x = sample(model.double(), sde, n_samples, 64, 20, generator=torch.Generator().manual_seed(3))
            quality[name] = quality_report(x)
    finally:
        torch.set_default_dtype(previous)
    return {"test_digits": y.shape[0], "bin_width": DIGITS_BIN_WIDTH, "dequantisation_seed": 2, "steps": list(steps),
            "models": models, "baselines": baselines, "quality": quality, "quality_samples": n_samples, "T": 20,
            "kde": "not measured (slow); scripts/digits_bits_per_dim.py measures it"}


def provenance_line(section: dict[str, Any]) -> str:
    """When, how and where a section was measured, in one italic sentence (each section has its own)."""
    p, m = section["measured"], section["measured"]["machine"]
    seconds = p.get("seconds")  # None for a section of an older file, which timed only the whole run
    took = "" if seconds is None else f", in {seconds:.0f} s" if seconds < 120 else f", in {seconds / 60:.1f} minutes"
    return (f"*Measured on {m['date']} with `{p['command']}`{took}: {m['cpu_count']} CPUs ({m['processor']}), "
            f"Python {m['python']}, torch {m['torch']}, {p['threads']} torch thread(s).*")


def book_markdown(book: dict[str, Any]) -> list[str]:
    lines = ["**Book.** Wall time, median over repeats.", "", "| what | median (s) | repeats |", "|---|---:|---:|"]
    for key in ("build", "nbval"):
        row = book.get(key)
        if row is not None:
            lines.append(f"| {row['what']} | {row['median_s']:.1f} | {row['repeats']} |")
    return lines


def training_markdown(tr: dict[str, Any]) -> list[str]:
    lines = [f"**Training**, each recipe to its own stopping point, then {tr['samples']} samples at "
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
    return lines


def sampling_markdown(sampling: dict[str, Any]) -> list[str]:
    lines = ["**Sampling** 64 digits with the shipped model, T = 20 steps on the uniform grid in t.", "",
             "| solver | score evaluations | median time (s) | repeats |", "|---|---:|---:|---:|"]
    for solver, row in sampling["solvers"].items():
        lines.append(f"| {solver} | {row['nfe']} | {row['median_s']:.3f} | {row['repeats']} |")
    return lines


def solver_error_markdown(err: dict[str, Any]) -> list[str]:
    lines = [f"**Solver error** at t = eps against the number of score evaluations (chapter 9), RMS error / "
             f"data scale, {err['n_points']} prior draws, VE sigma = {err['sigma']:g}.", "",
             "| problem | solver, grid | " + " | ".join(f"NFE {n}" for n in err["nfes"]) + " |",
             "|---|---|" + "---:|" * len(err["nfes"])]
    for row in err["rows"]:
        cells = " | ".join(f"{e:.1e} ({n})" if n != want else f"{e:.1e}"
                           for (n, e), want in zip(row["nfe_error"], err["nfes"]))
        lines.append(f"| {row['problem']} | {row['solver']}, {row['grid']} | {cells} |")
    return lines + ["", "A cell shows the error; a number in brackets is the counted NFE where it differs from the "
                    "column's."]


def table_row(cells: list[str]) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def likelihood_markdown(lik: dict[str, Any]) -> list[str]:
    steps = lik["steps"]
    lines = [f"**Likelihood** (chapter 10): bits/dim on the {lik['test_digits']} test digits, one uniform "
             f"dequantisation draw each (bin width {lik['bin_width']:g}, seed {lik['dequantisation_seed']}), mean "
             "± standard error. Score models: ln p by the PF-ODE, RK4 on the log-SNR grid, exact divergence; "
             f"baselines fitted on the training digits, K of the mixture chosen on the validation digits. "
             f"KDE: {lik['kde']}.", "",
             table_row(["model", f"bits/dim ({steps[-1]} RK4 steps for the score models)",
                        *(f"{n} RK4 steps" for n in reversed(steps[:-1]))]),
             "|---|" + "---:|" * len(steps)]
    for name, row in lik["baselines"]["rows"].items():
        lines.append(table_row([name, f"{row['bits_per_dim']:.3f} ± {row['standard_error']:.3f}",
                                *("–" for _ in steps[:-1])]))
    for name, by_steps in lik["models"].items():
        lines.append(table_row([f"score model `load_pretrained(\"{name}\")`", *(
            f"{by_steps[str(n)]['bits_per_dim']:.3f} ± {by_steps[str(n)]['standard_error']:.3f}"
            for n in reversed(steps))]))
    keys = ("frechet_pca", "coverage", "nearest_test_rmse", "nearest_train_rmse", "diverged_fraction")
    lines += ["", f"Samples of the same two models, {lik['quality_samples']} at T = {lik['T']} Euler steps "
              "(seed 3), measured against the test digits as in chapter 7.", "",
              "| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, report in lik["quality"].items():
        lines.append(f"| `{name}` | " + " | ".join(f"{report[k]:.3f}" for k in keys) + " |")
    any_report = next(iter(lik["quality"].values()))
    lines.append("| real digits (floor) | " + " | ".join(f"{any_report[k + '_floor']:.3f}" for k in keys) + " |")
    return lines


SECTIONS = {"book": book_markdown, "training": training_markdown, "sampling": sampling_markdown,
            "solver_error": solver_error_markdown, "likelihood": likelihood_markdown}
"""The steps of a run, in the order the Markdown shows them."""


def to_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, each section with its own date and command (the appendix includes this)."""
    lines = ["Each section says, in the line under it, when, with which command and on which machine it was "
             "measured: a run with `--only STEP,...` refreshes some sections and keeps the others as they were."]
    for key, section_markdown in SECTIONS.items():
        if key in results:
            lines += ["", *section_markdown(results[key]), "", provenance_line(results[key])]
    missing = [key for key in SECTIONS if key not in results]
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


COMMITTED = ROOT / "benchmarks" / "results.json"
STEPS = ("solver_error", "sampling", "likelihood", "training", "book")
"""The steps of a run, in the order they run (the book build last: it includes results.md)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; args.outputs lists the results.json paths to write (the committed one only when asked)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="smoke run for CI (tiny training, one repeat)")
    parser.add_argument("--out", type=Path, help="results.json path (default _build/benchmarks/results.json, "
                        "or _build/benchmarks-fast/results.json with --fast)")
    parser.add_argument("--update-committed", action="store_true",
                        help=f"also write the committed {COMMITTED} and its .md (not with --fast)")
    parser.add_argument("--only", type=str, default=None, metavar="STEP[,STEP...]",
                        help=f"run only these steps ({', '.join(STEPS)}); the other sections of an existing "
                        "results.json are kept as they were")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each timing (default 5 for sampling, "
                        "1 for the book build and nbval; 1 in fast mode)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and sampling")
    args = parser.parse_args(argv)
    if args.update_committed and args.fast:
        parser.error("--update-committed needs a full run, not --fast")
    args.steps = list(STEPS) if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown or not args.steps:
        parser.error(f"--only takes steps among {', '.join(STEPS)}, got {args.only!r}")
    out = args.out or ROOT / "_build" / ("benchmarks-fast" if args.fast else "benchmarks") / "results.json"
    if out.resolve() == COMMITTED.resolve() and not args.update_committed:
        parser.error(f"--out {out} is the committed result: pass --update-committed instead")
    args.outputs = [out] + ([COMMITTED] if args.update_committed and out.resolve() != COMMITTED.resolve() else [])
    args.command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    return args


def previous_sections(path: Path) -> dict[str, Any]:
    """The sections of an existing results.json, each with its own "measured" record (older files had one for all)."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    sections = {key: old[key] for key in STEPS if key in old}
    if "machine" in old:  # a file from before per-section records: one date, command and machine for the whole run
        shared = {"machine": old["machine"], "command": old["command"], "threads": old["threads"],
                  "fast": old["fast"], "seconds": None}
        sections = {key: {**value, "measured": value.get("measured", shared)} for key, value in sections.items()}
    if "sampling" in sections and "solvers" not in sections["sampling"]:
        rows = {k: v for k, v in sections["sampling"].items() if k != "measured"}
        sections["sampling"] = {"solvers": rows, "measured": sections["sampling"]["measured"]}
    return sections


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sampling_repeats = args.repeats or (1 if args.fast else 5)
    steps = {"solver_error": lambda: bench_solver_error(args.fast),
             "sampling": lambda: {"solvers": bench_sampling(sampling_repeats)},
             "likelihood": lambda: bench_likelihood(args.fast),
             "training": lambda: bench_training(args.fast),
             "book": lambda: bench_book(args.fast, args.repeats or 1)}
    # every output keeps the sections this run does not measure (only with --only: a full run starts afresh)
    kept = {out: previous_sections(out) if args.only is not None else {} for out in args.outputs}
    for out in args.outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for key in [s for s in STEPS if s in args.steps]:
        t0, machine = time.perf_counter(), machine_info()  # the date the step starts
        results[key] = steps[key]()
        results[key]["measured"] = {"command": args.command, "fast": args.fast, "threads": args.threads,
                                    "seconds": time.perf_counter() - t0, "machine": machine}
        # save after every step: the book build (last) includes results.md, and a crash keeps what was measured
        for out in args.outputs:
            merged = {**kept[out], **results}
            merged = {k: merged[k] for k in STEPS if k in merged}
            out.write_text(json.dumps(merged, indent=1) + "\n")
            out.with_suffix(".md").write_text(to_markdown(merged))
        print(f"[benchmarks] {key}: {time.perf_counter() - t0:.1f} s", flush=True)
    total = time.perf_counter() - start
    print(f"[benchmarks] wrote {', '.join(map(str, args.outputs))} (and .md) in {total:.0f} s")
    return {**results, "total_seconds": total}
