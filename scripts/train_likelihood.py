"""Train the likelihood model of chapter 11, shipped as `load_pretrained("likelihood")`.

    .venv/bin/python scripts/train_likelihood.py                    # writes _build/likelihood/
    .venv/bin/python scripts/train_likelihood.py --update-shipped   # overwrites sbgm_edu/checkpoints/

What makes it a likelihood model (chapter "Other SDEs and exact likelihood"):

1. the data it sees are the ones it is scored on: digits dequantised by U(-w/2, w/2) per pixel,
   w = 2/16 (`--draws` fixed draws per training digit, `sbgm_edu.baselines.dequantized_split`);
2. the Gaussian part of the network is the full-covariance Gaussian of those data
   (`sbgm_edu.nets.CovarianceScoreNet`, its correction starting at zero), so training starts from
   the best single Gaussian instead of an isotropic one;
3. the loss weight is lambda_t = g(t)^2, the bound of eq. (ch10-mle-bound) (Song, Durkan, Murray &
   Ermon 2021), with t drawn uniformly in log-SNR and reweighted (`likelihood_time_sampler`).

Validation (early stopping) uses the same weight on dequantised validation digits. One CPU thread,
fixed seeds. Measure the result with `python scripts/digits_bits_per_dim.py --model likelihood`.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from sbgm_edu.baselines import dequantized_split
from sbgm_edu.checkpoints import CHECKPOINT_DIR, PRETRAINED, save_checkpoint
from sbgm_edu.data import DIGITS_DATA_MAP, load_digits
from sbgm_edu.likelihood import DIGITS_BIN_WIDTH, likelihood_loss_weight, likelihood_time_sampler
from sbgm_edu.nets import CovarianceScoreNet
from sbgm_edu.sde import VESDE
from sbgm_edu.train import train

SETTINGS = {"sigma": 25.0, "eps": 1e-5, "hidden": 256, "depth": 3, "draws": 20, "epochs": 30, "batch_size": 128,
            "lr": 2e-3, "lr_schedule": "cosine", "ema_decay": 0.999, "seed": 0, "init_seed": 0}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in SETTINGS.items():
        if key != "lr_schedule":
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--max-seconds", type=float, default=None, help="wall-clock budget of the training")
    parser.add_argument("--out", default="_build/likelihood/" + PRETRAINED["likelihood"], help="checkpoint (.pt)")
    parser.add_argument("--update-shipped", action="store_true", help="overwrite the shipped checkpoint")
    return parser.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    sde = VESDE(args.sigma)
    torch.manual_seed(args.init_seed)
    model = CovarianceScoreNet.for_data(sde, load_digits("train"), extra_variance=DIGITS_BIN_WIDTH**2 / 12,
                                       hidden=args.hidden, depth=args.depth)
    y_train = dequantized_split("train", args.draws, seed=args.seed).float()
    y_val = dequantized_split("val", 1, seed=args.seed + 1).float()
    history = train(model, sde, y_train, y_val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    lr_schedule="cosine", ema_decay=args.ema_decay, eps=args.eps, patience=args.epochs,
                    loss_weight=likelihood_loss_weight(sde), time_sampler=likelihood_time_sampler(sde, args.eps),
                    max_seconds=args.max_seconds, seed=args.seed)
    training = {k: getattr(args, k) for k in SETTINGS if k != "lr_schedule"} | {"lr_schedule": "cosine"}
    settings = {"data_map": DIGITS_DATA_MAP, "dequantization": "uniform, bin width 2/16",
                "data": "sklearn load_digits, train rows [:1000], val rows [1000:1350]", "training": training,
                "best_epoch": history["best_epoch"], "best_val_loss": history["best_val_loss"],
                "steps": history["steps"], "train_seconds": round(history["seconds"][-1], 1), "threads": 1,
                "torch": torch.__version__, "machine": platform.machine(),
                "command": "python scripts/train_likelihood.py --update-shipped"}
    out = CHECKPOINT_DIR / PRETRAINED["likelihood"] if args.update_shipped else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(out, model, sde, settings, overwrite=True)
    print(f"trained {history['steps']} steps in {history['seconds'][-1]:.0f} s, best validation loss "
          f"{history['best_val_loss']:.4f} at epoch {history['best_epoch']}; wrote {path}")


if __name__ == "__main__":
    main()
