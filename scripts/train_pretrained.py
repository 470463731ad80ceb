"""Reproduce the shipped checkpoint sbgm_edu/checkpoints/scorenet_digits_ve25.pt from scratch.

One command, from the repository root:

    .venv/bin/python scripts/train_pretrained.py                    # writes _build/checkpoints/scorenet_digits_ve25.pt
    .venv/bin/python scripts/train_pretrained.py --update-shipped   # replaces the shipped checkpoint

It trains the recipe `sbgm_edu.recipes.BOOK`: `sbgm_edu.nets.ScoreNet` on the digits training split
(scikit-learn's 8x8 digits, rows [:1000], pixels mapped by 2x/16 - 1) for the VE SDE with
sigma = 25, with the DSM loss and lambda_t = sigma_t^2 (`sbgm_edu.losses.dsm_loss`),
Adam with a cosine learning-rate schedule and an EMA of the weights, keeps the
weights with the lowest validation loss (rows [1000:1350]), and writes the
checkpoint plus its settings (.json). Seeds are fixed and the run uses one CPU thread, so the
result is the same on every run on the same machine and PyTorch build (other builds may differ
in the last bits).

Options: --out PATH writes elsewhere (an existing file there is replaced); --update-shipped
writes the shipped file that every chapter loads (only then); --epochs N changes the length of
the run; --threads N the CPU threads. Chapters load the result with `sbgm_edu.train.load_pretrained()`.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from sbgm_edu.checkpoints import PRETRAINED_PATH, save_checkpoint
from sbgm_edu.data import DIGITS_DATA_MAP, load_digits
from sbgm_edu.losses import validation_loss
from sbgm_edu.recipes import BOOK, train_recipe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "checkpoints" / PRETRAINED_PATH.name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"checkpoint path (.pt), default {DEFAULT_OUT}")
    parser.add_argument("--update-shipped", action="store_true", help=f"write the shipped checkpoint {PRETRAINED_PATH}")
    parser.add_argument("--epochs", type=int, default=BOOK.epochs, help="number of epochs")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args(argv)
    if args.update_shipped and args.out is not None:
        parser.error("give either --out or --update-shipped, not both")
    if args.out is not None and args.out.resolve() == PRETRAINED_PATH.resolve():
        parser.error(f"--out {args.out} is the shipped checkpoint: pass --update-shipped instead")
    args.out = PRETRAINED_PATH if args.update_shipped else (args.out or DEFAULT_OUT)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, sde, history = train_recipe(BOOK, epochs=args.epochs, progress=True)
    seconds = history["seconds_total"]
    test_loss = validation_loss(model, sde, load_digits("test"), steps=20, generator=torch.Generator().manual_seed(2))
    settings = {
        "data_map": DIGITS_DATA_MAP,
        "data": "sklearn load_digits, train rows [:1000], val rows [1000:1350]",
        "init_seed": BOOK.init_seed,
        "training": {**BOOK.training(), "epochs": args.epochs},
        "best_epoch": history["best_epoch"],
        "best_val_loss": history["best_val_loss"],
        "test_loss": test_loss,
        "train_seconds": round(seconds, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "command": "python scripts/train_pretrained.py",
    }
    path = save_checkpoint(args.out, model, sde, settings, overwrite=True)
    print(f"trained {len(history['epoch'])} epochs ({history['steps']} steps) in {seconds:.1f} s; "
          f"best validation loss {history['best_val_loss']:.5f} at epoch {history['best_epoch']}; "
          f"test loss {test_loss:.5f}")
    print(f"wrote {path} and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
