"""Training a score model with denoising score matching (DSM).

Chapter "Training a score model" (book/ch06_training.ipynb) derives every step. `train`
repeats the training steps of eq. (dsm-steps) over shuffled mini-batches with Adam, an
exponential moving average (EMA) of the weights, early stopping on a validation loss, a
progress bar and a history. It is written as short helpers: one epoch (`_train_epoch`), one
mini-batch loss (`_batch_loss`), one validation (`_validate`), the learning-rate schedule
(`cosine_learning_rate`) and the end of the run (`_restore_best`).

Hooks for later chapters: `labels` / `label_dropout` train a conditional network
(classifier-free guidance), `time_sampler` draws t from another density with its importance
weight, `loss` replaces the DSM objective (e.g. `sbgm_edu.original.original_loss`).

The losses live in `sbgm_edu.losses` and the checkpoints in `sbgm_edu.checkpoints`; the names
chapters use (`dsm_loss`, `log_prob_proxy`, `validation_loss`, `load_pretrained`,
`save_checkpoint`, ...) stay importable from here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sbgm_edu._checks import check_eps, check_positive_int, check_tensor
from sbgm_edu.checkpoints import (
    PRETRAINED_PATH,
    CheckpointError,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from sbgm_edu.losses import (
    EPS,
    LossWeight,
    TimeSampler,
    draw_time_and_noise,
    dsm_loss,
    dsm_loss_per_example,
    log_prob_proxy,
    proxy_loss_weight,
    validation_loss,
)
from sbgm_edu.sde import SDE, ScoreFn, check_sde

original_loss_weight = proxy_loss_weight
"""Old name of `sbgm_edu.losses.proxy_loss_weight` (sigma_t^4, the weight of the original's proxy)."""

BatchLoss = Callable[[nn.Module, torch.Tensor, SDE, torch.Tensor, torch.Tensor], torch.Tensor]
"""loss(model, x0, sde, t, noise) -> 0-d tensor, the signature of `sbgm_edu.original.original_loss`."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}
LR_SCHEDULES = ("constant", "cosine")


class TrainingDiverged(RuntimeError):
    """Training never reached a finite validation loss; `history` holds what was measured."""

    def __init__(self, message: str, history: dict) -> None:
        super().__init__(message)
        self.history = history


class EMA:
    """An exponential moving average of a model's parameters: theta_ema <- d theta_ema + (1 - d) theta.

    `shadow` is a frozen copy of the model holding the averaged weights; call
    `update(model)` after every optimiser step. The decay used at step n is
    min(decay, (1 + n) / (10 + n)), a warm-up so that the average does not
    remember the random initial weights for long in short runs.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0.0 < decay < 1.0):
            raise ValueError(f"ema_decay must be a float in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        for p_ema, p in zip(self.shadow.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - decay)


def cosine_learning_rate(lr: float, step: int, planned_steps: int) -> float:
    """lr (1 + cos(pi k / K)) / 2 at step k of K planned steps: lr at the start, 0 at the end."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / planned_steps))


def with_labels(model: nn.Module, labels: torch.Tensor | None) -> ScoreFn:
    """The score function x, t -> model(x, t, labels) of a conditional net (model itself if labels is None)."""
    if labels is None:
        return model
    return lambda x, t: model(x, t, labels)


def drop_labels(
    labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Replace each label by `null_label` with probability p (classifier-free guidance training).

    One u ~ U(0, 1) per example from `generator` (drawn only if p > 0); label i becomes
    null_label where u_i < p. Shape (N,) in and out.
    """
    if p == 0.0:
        return labels
    u = torch.rand(labels.shape[0], generator=generator).to(labels.device)
    return torch.where(u < p, torch.full_like(labels, null_label), labels)


# ---------------------------------------------------------------------------
# argument checks (once, at the entry of `train`)
# ---------------------------------------------------------------------------


def _check_data(data: torch.Tensor, name: str, dim: int | None) -> torch.Tensor:
    check_tensor(data, name, ndim=2)
    if data.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got shape {tuple(data.shape)}")
    if dim is not None and data.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}) to match the model, got {tuple(data.shape)}")
    return data


def _check_label_tensor(labels: torch.Tensor, name: str, n: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 tensor of shape ({n},), got {getattr(labels, 'dtype', labels)!r}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per row of the data, got {tuple(labels.shape)}")
    if (labels < 0).any():
        raise ValueError(f"{name} must hold labels >= 0")


def _check_conditioning(model: nn.Module, labels, val_labels, label_dropout: float, n_train: int, n_val: int) -> None:
    if isinstance(label_dropout, bool) or not isinstance(label_dropout, (int, float)) or not 0 <= label_dropout <= 1:
        raise ValueError(f"label_dropout must be a float in [0, 1], got {label_dropout!r}")
    if labels is None:
        if label_dropout > 0 or val_labels is not None:
            raise ValueError("label_dropout > 0 and val_labels need labels (the training labels)")
        return
    _check_label_tensor(labels, "labels", n_train)
    if val_labels is not None:
        _check_label_tensor(val_labels, "val_labels", n_val)
    if label_dropout > 0 and not isinstance(getattr(model, "null_label", None), int):
        raise ValueError("label_dropout > 0 needs a model with an int attribute `null_label` (the 'no label' id)")


def _check_numbers(epochs, batch_size, patience, val_steps, val_repeats, val_every, seed, lr, max_seconds) -> None:
    for value, name in ((epochs, "epochs"), (batch_size, "batch_size"), (patience, "patience"),
                        (val_steps, "val_steps"), (val_repeats, "val_repeats"), (val_every, "val_every")):
        check_positive_int(value, name)
    check_positive_int(seed, "seed", minimum=0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite float > 0, got {lr!r}")
    if max_seconds is not None and not (
        isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool) and max_seconds > 0
    ):
        raise ValueError(f"max_seconds must be a number > 0 or None, got {max_seconds!r}")


def _check_objective(optimizer: str, lr_schedule: str, loss, time_sampler, labels) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    for value, name in ((loss, "loss"), (time_sampler, "time_sampler")):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    if loss is not None and (time_sampler is not None or labels is not None):
        raise ValueError("loss replaces the DSM objective: it cannot be combined with time_sampler or labels")


# ---------------------------------------------------------------------------
# the training loop, as short steps
# ---------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything one call of `train` works with (the model, the data, the optimiser, the best weights)."""

    model: nn.Module
    sde: SDE
    train_data: torch.Tensor
    val_data: torch.Tensor
    labels: torch.Tensor | None
    val_labels: torch.Tensor | None
    opt: torch.optim.Optimizer
    ema: EMA | None
    generator: torch.Generator
    options: dict
    history: dict = field(default_factory=lambda: {k: [] for k in (
        "epoch", "train_loss", "seconds", "val_epoch", "val_loss", "val_loss_ema")})
    best_val: float = math.inf
    best_epoch: int = -1
    best_state: dict | None = None
    steps_taken: int = 0
    start: float = field(default_factory=time.perf_counter)


def _batch_loss(run: _Run, x0: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The loss of one mini-batch: DSM (eq. (dsm-steps)), or the `loss` hook on the same draws."""
    o = run.options
    if o["loss"] is not None:
        t, _, noise = draw_time_and_noise(x0, o["eps"], run.generator)
        return o["loss"](run.model, x0, run.sde, t, noise)
    if labels is not None:
        labels = drop_labels(labels, o["label_dropout"], getattr(run.model, "null_label", -1), run.generator)
    score_fn = with_labels(run.model, labels)
    return dsm_loss(score_fn, x0, run.sde, o["eps"], run.generator,
                    loss_weight=o["loss_weight"], time_sampler=o["time_sampler"])


def _train_epoch(run: _Run) -> float:
    """One pass over the shuffled training data (step 1 of eq. (dsm-steps) per batch); the mean batch loss."""
    o, n = run.options, run.train_data.shape[0]
    run.model.train()
    order = torch.randperm(n, generator=run.generator).to(run.train_data.device)
    total = 0.0
    for i in range(0, n, o["batch_size"]):
        rows = order[i : i + o["batch_size"]]
        if o["lr_schedule"] == "cosine":
            for group in run.opt.param_groups:
                group["lr"] = cosine_learning_rate(o["lr"], run.steps_taken, o["planned_steps"])
        loss = _batch_loss(run, run.train_data[rows], None if run.labels is None else run.labels[rows])
        run.opt.zero_grad(set_to_none=True)
        loss.backward()  # step 7: gradient ...
        run.opt.step()  # ... and parameter update
        run.steps_taken += 1
        if run.ema is not None:
            run.ema.update(run.model)
        total += loss.item() * rows.shape[0]
    return total / n


def _validation_loss_of(run: _Run, net: nn.Module) -> float:
    """`validation_loss` of net on the validation data, with the same noise at every epoch."""
    o = run.options
    net.eval()
    val_generator = torch.Generator().manual_seed(o["seed"] + 1)
    score_fn = with_labels(net, run.val_labels)
    return validation_loss(score_fn, run.sde, run.val_data, o["val_steps"], o["eps"], o["val_repeats"],
                           val_generator, o["loss_weight"])


def _validate(run: _Run, epoch: int) -> float:
    """Validate raw and EMA weights, record them, keep a copy of the best monitored weights."""
    val_raw = _validation_loss_of(run, run.model)
    val_ema = _validation_loss_of(run, run.ema.shadow) if run.ema is not None else math.nan
    watched = val_ema if run.ema is not None else val_raw
    run.history["val_epoch"].append(epoch)
    run.history["val_loss"].append(val_raw)
    run.history["val_loss_ema"].append(val_ema)
    if watched < run.best_val:  # False for NaN: a diverged network is never kept
        run.best_val, run.best_epoch = watched, epoch
        source = run.ema.shadow if run.ema is not None else run.model
        run.best_state = {k: v.detach().clone() for k, v in source.state_dict().items()}
    return watched


def _stop_reason(run: _Run, epoch: int, train_loss: float, out_of_time: bool) -> str | None:
    """Why training stops after this epoch, or None to go on."""
    if not math.isfinite(train_loss):
        return "nonfinite_loss"
    if run.best_epoch >= 0 and epoch - run.best_epoch >= run.options["patience"]:
        return "patience"
    return "max_seconds" if out_of_time else None


def _restore_best(run: _Run) -> None:
    """Load the best monitored weights into the model, or raise TrainingDiverged if there are none."""
    if run.best_state is None:
        h = run.history
        raise TrainingDiverged(
            f"training stopped ({h['stopped']}) after {len(h['epoch'])} epoch(s) without a finite validation "
            f"loss (validation losses {h['val_loss']}, last training loss {h['train_loss'][-1]}); "
            f"lr = {run.options['lr']} may be too large. The model holds the weights of the last step; "
            "the history is in the `history` attribute of this error.",
            h,
        )
    run.model.load_state_dict(run.best_state)
    run.model.eval()


def _start(model, sde, train_data, val_data, labels, val_labels, options: dict, device) -> _Run:
    """Move everything to `device`, build the optimiser, the EMA and the generator."""
    model.to(device)
    opt = OPTIMIZERS[options["optimizer"]](model.parameters(), lr=options["lr"])
    ema = EMA(model, options["ema_decay"]) if options["ema_decay"] is not None else None
    generator = torch.Generator().manual_seed(options["seed"])  # CPU: draws are moved to `device`
    n_batches = math.ceil(train_data.shape[0] / options["batch_size"])
    options["planned_steps"] = options["epochs"] * n_batches
    move = (lambda x: None if x is None else x.to(device))  # noqa: E731
    return _Run(model, sde, move(train_data), move(val_data), move(labels), move(val_labels), opt, ema, generator,
                options)


def _run_epochs(run: _Run, progress: bool) -> None:
    """The loop over epochs: train, validate every `val_every` epochs, stop early when told."""
    from tqdm.auto import tqdm

    o, h = run.options, run.history
    h["stopped"] = "epochs"
    bar = tqdm(range(o["epochs"]), desc="training", disable=not progress, unit="epoch")
    for epoch in bar:
        train_loss = _train_epoch(run)
        h["epoch"].append(epoch)
        h["train_loss"].append(train_loss)
        h["seconds"].append(time.perf_counter() - run.start)
        out_of_time = o["max_seconds"] is not None and h["seconds"][-1] > o["max_seconds"]
        if (epoch + 1) % o["val_every"] == 0 or epoch == o["epochs"] - 1 or out_of_time:
            watched = _validate(run, epoch)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{watched:.4f}", best=f"{run.best_val:.4f}")
        reason = _stop_reason(run, epoch, train_loss, out_of_time)
        if reason is not None:
            h["stopped"] = reason
            break
    bar.close()


def train(
    model: nn.Module,
    sde: SDE,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    *,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 2e-3,
    patience: int = 20,
    ema_decay: float | None = 0.999,
    eps: float = EPS,
    loss_weight: LossWeight | None = None,
    optimizer: str = "adam",
    lr_schedule: str = "constant",
    val_steps: int = 20,
    val_repeats: int = 1,
    val_every: int = 1,
    max_seconds: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    val_labels: torch.Tensor | None = None,
    time_sampler: TimeSampler | None = None,
    loss: BatchLoss | None = None,
) -> dict:
    """Fit a score network by minimising `dsm_loss` (eq. (dsm-loss), steps of eq. (dsm-steps)).

    Each epoch shuffles `train_data`, takes optimiser steps on mini-batches of `dsm_loss`,
    updates the EMA of the weights, then (every `val_every` epochs) evaluates
    `validation_loss` on `val_data` with a fixed noise seed, for the raw and the EMA weights.
    Training stops when the monitored validation loss (EMA weights if `ema_decay` is set,
    else the raw ones) has not improved for `patience` epochs, after `epochs` epochs, after
    `max_seconds`, or when the training loss is no longer finite. At the end the model holds
    the best monitored weights and is in eval mode. If no validation loss was ever finite,
    `TrainingDiverged` is raised; its `history` attribute holds the history.

    Random draws, all from one generator seeded by `seed`: per epoch a permutation; per batch
    (with labels and label_dropout > 0) one u per example for the label dropout, then t, then the noise.

    Args:
        model: the network, called as model(x, t) (or model(x, t, labels)); trained in place.
        sde: the forward SDE.
        train_data, val_data: tensors of shape (N, D), D the model's dimension.
        epochs, batch_size, patience: ints >= 1 (passes over the data, examples per step,
            validations without improvement before stopping, counted in epochs).
        lr: the optimiser's learning rate (> 0).
        ema_decay: EMA decay in (0, 1), or None for no EMA.
        eps: smallest time.
        loss_weight: lambda(t) of the DSM and validation losses; None means sigma_t^2.
        optimizer: "adam" (default) or "adamax" (the original notebook's choice).
        lr_schedule: "constant", or "cosine" (`cosine_learning_rate` over
            K = epochs * ceil(N / batch_size) planned steps; it decays to 0 at the last epoch).
        val_steps, val_repeats: the time grid and noise draws of `validation_loss`.
        val_every: validate after every `val_every`-th epoch (and after the last one).
        max_seconds: wall-clock budget, or None.
        seed: seeds the shuffling, the times and the noise (not the initial weights:
            seed torch before building the model).
        device: where to train ("cpu", "cuda", ...); the data are moved there.
        progress: show a tqdm progress bar.
        labels: (N,) int labels of train_data for a conditional network, called as
            model(x, t, labels); None for an unconditional one.
        label_dropout: probability of replacing a label by `model.null_label` ("no label").
        val_labels: (N_val,) labels of val_data; None validates unconditionally, model(x, t).
        time_sampler: (n, generator) -> (t, importance_weight), shapes (n,); None = U(eps, 1), weight 1.
        loss: loss(model, x0, sde, t, noise) -> 0-d tensor replacing the DSM loss of a batch
            (t ~ U(eps, 1) and the noise drawn as for `dsm_loss`), e.g.
            `sbgm_edu.original.original_loss`; `loss_weight` then applies to validation only.

    Returns:
        history: a dict with per-epoch lists "epoch", "train_loss" (mean mini-batch loss) and
        "seconds" (elapsed), per-validation lists "val_epoch", "val_loss" (raw weights) and
        "val_loss_ema" (EMA weights, NaN without EMA), and "best_epoch", "best_val_loss",
        "monitor" ("ema" or "raw"), "stopped" ("epochs", "patience", "max_seconds" or
        "nonfinite_loss"), "steps" (optimiser steps taken, an int).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_sde(sde)
    train_data = _check_data(train_data, "train_data", getattr(model, "dim", None))
    val_data = _check_data(val_data, "val_data", train_data.shape[1])
    _check_numbers(epochs, batch_size, patience, val_steps, val_repeats, val_every, seed, lr, max_seconds)
    _check_objective(optimizer, lr_schedule, loss, time_sampler, labels)
    _check_conditioning(model, labels, val_labels, label_dropout, train_data.shape[0], val_data.shape[0])
    options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience, "ema_decay": ema_decay,
               "eps": check_eps(eps), "loss_weight": loss_weight, "optimizer": optimizer, "lr_schedule": lr_schedule,
               "val_steps": val_steps, "val_repeats": val_repeats, "val_every": val_every,
               "max_seconds": max_seconds, "seed": seed, "label_dropout": float(label_dropout),
               "time_sampler": time_sampler, "loss": loss}
    run = _start(model, sde, train_data, val_data, labels, val_labels, options, torch.device(device))
    _run_epochs(run, progress)
    run.history.update(best_epoch=run.best_epoch, best_val_loss=run.best_val,
                       monitor="ema" if run.ema is not None else "raw", steps=run.steps_taken)
    _restore_best(run)
    return run.history


__all__ = [
    "EMA",
    "EPS",
    "PRETRAINED_PATH",
    "BatchLoss",
    "CheckpointError",
    "TrainingDiverged",
    "cosine_learning_rate",
    "drop_labels",
    "dsm_loss",
    "dsm_loss_per_example",
    "load_checkpoint",
    "load_pretrained",
    "log_prob_proxy",
    "original_loss_weight",
    "proxy_loss_weight",
    "save_checkpoint",
    "train",
    "validation_loss",
    "with_labels",
]
