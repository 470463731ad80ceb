"""Precompute the measurements of chapter 8, "Why the first attempt fails".

Trains the original configuration of the companion notebook (Tomczak, intro_dgm,
sbgms/sbgm_example.ipynb) and then the same model with the fixes applied one at a time
(short runs, fixed seeds, the same number of optimiser steps for every variant, one thread:
deterministic),
plus one side experiment (the original setup with only sigma changed), samples 1000 digits
from each with its sampler at T = 20, measures them with sbgm_edu.metrics.quality_report
against the held-out test digits, and writes everything chapter 8 shows to
book/data/first_attempt.json (metrics, settings, training time, 16 samples per variant). The chapter measures the
shipped checkpoint (sbgm_edu.train.load_pretrained) itself, in the same way.

    .venv/bin/python scripts/first_attempt_table.py            # about 7.5 minutes (one thread, shared CPU)
    .venv/bin/python scripts/first_attempt_table.py --epochs 5 --out /tmp/quick.json   # a quick check

Every variant's samples are measured in the book's pixel space (x -> 2x/16 - 1): samples of a
model trained on the original's 2x/17 - 1 data are decoded with the original's map first.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sbgm_edu.data import load_digits, to_original_map
from sbgm_edu.metrics import METRIC_NAMES
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.recipes import measure_recipe
from sbgm_edu.sde import VESDE
from sbgm_edu.train import original_loss_weight, train

ROOT = Path(__file__).resolve().parents[1]
N_SAMPLES = 1000
N_SHOWN = 16
T = 20
SAMPLE_SEED = 1234
EPOCHS = 150


# Each variant: what changes with respect to the row above it.
VARIANTS = [
    {
        "key": "original",
        "label": "original setup",
        "change": "OriginalScoreNet, sigma = 1.01, lambda_t on the noise loss (sigma_t^4), Adamax, "
        "data 2x/17 - 1, original sampler (destination time, g, T - 1 steps, tanh)",
        "net": "original", "sigma": 1.01, "weight": "original", "data_map": "2x/17-1",
        "optimizer": "adamax", "lr": 1e-3, "batch_size": 32, "ema": None, "sampler": "original",
    },
    {
        "key": "sampler",
        "label": "+ Euler sampler of chapter 7",
        "change": "same trained model; T Euler steps with the score at the start of each step, g^2, no tanh",
        "reuse": "original", "sampler": "euler",
    },
    {
        "key": "scorenet",
        "label": "+ ScoreNet",
        "change": "time as an input (features of ln sigma_t), scaled input, noise prediction, no clamp",
        "net": "scorenet", "sigma": 1.01, "weight": "original", "data_map": "2x/17-1",
        "optimizer": "adamax", "lr": 1e-3, "batch_size": 32, "ema": None, "sampler": "euler",
    },
    {
        "key": "weight",
        "label": "+ weight λ_t = σ_t²",
        "change": "loss weight sigma_t^2 on the score loss (= plain noise-prediction loss)",
        "net": "scorenet", "sigma": 1.01, "weight": "book", "data_map": "2x/17-1",
        "optimizer": "adamax", "lr": 1e-3, "batch_size": 32, "ema": None, "sampler": "euler",
    },
    {
        "key": "sigma",
        "label": "+ σ = 25",
        "change": "VE parameter sigma = 25, so that the prior N(0, sigma_1^2 I) matches p_1",
        "net": "scorenet", "sigma": 25.0, "weight": "book", "data_map": "2x/17-1",
        "optimizer": "adamax", "lr": 1e-3, "batch_size": 32, "ema": None, "sampler": "euler",
    },
    {
        "key": "final",
        "label": "+ data map 2x/16 − 1, Adam, EMA (book's setup)",
        "change": "data map 2x/16 - 1; Adam lr 2e-3, batch 128, EMA 0.999 of the weights",
        "net": "scorenet", "sigma": 25.0, "weight": "book", "data_map": "2x/16-1",
        "optimizer": "adam", "lr": 2e-3, "batch_size": 128, "ema": 0.999, "sampler": "euler",
    },
]

# A side experiment, not part of the chain: only sigma changed in the original setup.
SIDE_VARIANTS = [
    {
        "key": "sigma_only",
        "label": "original setup with only σ = 25",
        "change": "the original setup, only sigma = 25 (and the eq. (ve-euler-sampler) sampler, since the "
        "original's g instead of g^2 is wrong for sigma = 25)",
        "net": "original", "sigma": 25.0, "weight": "original", "data_map": "2x/17-1",
        "optimizer": "adamax", "lr": 1e-3, "batch_size": 32, "ema": None, "sampler": "euler",
    },
]


def build_and_train(v: dict, epochs: int, seed: int) -> tuple[torch.nn.Module, VESDE, dict]:
    """Train one variant for as many optimiser steps as `epochs` epochs at batch size 32 take."""
    epochs = epochs * v["batch_size"] // 32
    sde = VESDE(v["sigma"])
    torch.manual_seed(seed)
    model = OriginalScoreNet(64, 512) if v["net"] == "original" else ScoreNet(sde)
    data = {s: load_digits(s) for s in ("train", "val")}
    if v["data_map"] == "2x/17-1":
        data = {s: to_original_map(x) for s, x in data.items()}
    history = train(
        model, sde, data["train"], data["val"],
        epochs=epochs, batch_size=v["batch_size"], lr=v["lr"], patience=50,
        ema_decay=v["ema"], loss_weight=original_loss_weight(sde) if v["weight"] == "original" else None,
        optimizer=v["optimizer"], seed=seed, progress=False,
    )
    info = {k: history[k] for k in ("best_epoch", "best_val_loss", "stopped", "steps")}
    info["epochs_run"] = len(history["epoch"])
    info["train_seconds"] = round(history["seconds"][-1], 1)
    return model, sde, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="training epochs per variant at batch size 32 (the same number of steps for all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "book" / "data" / "first_attempt.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # faster than 2 threads for these small networks, and steadier

    start = time.perf_counter()
    models: dict[str, tuple] = {}
    rows = []
    for v in VARIANTS + SIDE_VARIANTS:
        if "reuse" in v:
            base = next(r for r in VARIANTS if r["key"] == v["reuse"])
            v = {**base, **v}
            model, sde, info = models[v["reuse"]]
            info = {**info, "retrained": False}
        else:
            model, sde, info = build_and_train(v, args.epochs, args.seed)
            info["retrained"] = True
            models[v["key"]] = (model, sde, info)
        report, shown = measure_recipe(model, sde, v, N_SAMPLES, T, SAMPLE_SEED)
        settings = {k: v[k] for k in ("net", "sigma", "weight", "data_map", "optimizer", "lr", "batch_size", "ema",
                                      "sampler")}
        rows.append({"key": v["key"], "label": v["label"], "change": v["change"], "settings": settings,
                     "side": v in SIDE_VARIANTS,
                     "training": info, "metrics": report,
                     "samples": [[round(p, 3) for p in row] for row in shown[:N_SHOWN].tolist()]})
        print(f"{v['key']:>9}: " + ", ".join(f"{k}={report[k]:.3f}" for k in METRIC_NAMES)
              + f", {info}", flush=True)

    result = {
        "command": "python scripts/first_attempt_table.py"
        + (f" --epochs {args.epochs}" if args.epochs != EPOCHS else ""),
        "epochs_per_variant": args.epochs,
        "seed": args.seed,
        "sample_seed": SAMPLE_SEED,
        "n_samples": N_SAMPLES,
        "T": T,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "total_seconds": round(time.perf_counter() - start, 1),
        "variants": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} in {result['total_seconds']} s")


if __name__ == "__main__":
    main()
