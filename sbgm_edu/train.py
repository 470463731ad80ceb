"""Training a score model with denoising score matching (DSM), and its checkpoints.

Chapter "Training a score model" (book/ch06_training.ipynb) derives every step:

- `dsm_loss`: one Monte Carlo estimate of the DSM objective, eq. (dsm-loss),
  with the weight lambda_t = sigma_t^2 of eq. (dsm-weight), following the
  training steps of eq. (dsm-steps) (Vincent 2011; Song et al. 2021).
- `validation_loss`: the same objective on a fixed time grid with fixed noise,
  so that numbers from different epochs can be compared.
- `log_prob_proxy`: the "log-likelihood proxy" of the companion notebook
  `sbgms/sbgm_example.ipynb` (J. M. Tomczak, `intro_dgm`), kept for comparison.
  It is neither a log-likelihood nor a bound on one (see its docstring).
- `train`: mini-batches, Adam, early stopping on the validation loss, an
  exponential moving average (EMA) of the weights, a progress bar and a history.
- `save_checkpoint` / `load_checkpoint` / `load_pretrained`: weights plus the
  settings needed to rebuild the model, checked when loaded.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sbgm_edu._checks import check_eps, check_positive_int, check_tensor
from sbgm_edu.data import DIGITS_DATA_MAP
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.sde import SDE, VESDE, ScoreFn, check_sde

LossWeight = Callable[[torch.Tensor], torch.Tensor]
"""lambda(t) -> weight, for t of shape (N,) returns shape (N,)."""

EPS = 1e-5
"""Smallest time used in training and sampling (the notebook's EPS)."""


# ---------------------------------------------------------------------------
# the loss
# ---------------------------------------------------------------------------


def original_loss_weight(sde: SDE) -> LossWeight:
    """The weight the original notebook effectively uses, written for the score-space loss: sigma_t^4.

    The original computes 1/2 lambda_t ||x_1 - eps_theta||^2 with lambda_t = sigma_t^2
    *on top of* the noise-space error, and ||x_1 - eps_theta||^2 =
    sigma_t^2 ||s_theta + x_1 / sigma_t||^2 already carries one sigma_t^2. In the
    form of eq. (dsm-loss) its weight is therefore sigma_t^4 (chapter "Why the
    first attempt fails").
    """
    check_sde(sde)
    return lambda t: sde.marginal_std(t) ** 4


def dsm_loss_per_example(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    sde: SDE,
    loss_weight: LossWeight | None = None,
) -> torch.Tensor:
    """1/2 lambda_t ||s_theta(x_t, t) + x_1 / sigma_t||^2 / D for given x_0, x_1 and t, eq. (dsm-loss).

    Steps 4 to 6 of eq. (dsm-steps): x_t = m_t x_0 + sigma_t x_1 (x_t = x_0 + sigma_t x_1
    for the VE SDE), then the score estimate at (x_t, t), then the weighted squared
    distance to the conditional score grad ln p_0t(x_t | x_0) = -x_1 / sigma_t.
    The squared norm is divided by D (a mean over coordinates, as in the original
    notebook), so the number is per pixel and does not grow with the dimension.

    Args:
        score_fn: s_theta(x, t) -> (N, D), t an (N,) tensor.
        x0: data, shape (N, D). x1: standard normal noise, shape (N, D).
        t: times in (0, 1], shape (N,).
        sde: the forward SDE.
        loss_weight: lambda(t); None means lambda_t = sigma_t^2 (`sde.loss_weight`), eq. (dsm-weight).

    Returns:
        The loss of each example, shape (N,).
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    check_tensor(x1, "x1", ndim=2)
    if x1.shape != x0.shape:
        raise ValueError(f"x1 must have the shape of x0 {tuple(x0.shape)}, got {tuple(x1.shape)}")
    if not isinstance(t, torch.Tensor) or t.shape != (x0.shape[0],):
        raise ValueError(f"t must be a tensor of shape ({x0.shape[0]},), one time per row of x0")
    sigma_t = sde.marginal_std(t).to(x0.dtype)  # (N,)
    if (sigma_t <= 0).any():
        raise ValueError("t must be > 0 (sigma_t = 0 at t = 0)")
    weight = (sde.loss_weight(t) if loss_weight is None else loss_weight(t)).to(x0.dtype)
    x_t = sde.perturb(x0, t, x1)  # step 4
    score = score_fn(x_t, t)  # step 5
    target = -x1 / sigma_t[:, None]  # grad ln p_0t(x_t | x_0)
    return 0.5 * weight * ((score - target) ** 2).mean(dim=1)  # step 6


def dsm_loss(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    sde: SDE,
    eps: float = EPS,
    generator: torch.Generator | None = None,
    *,
    loss_weight: LossWeight | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """One Monte Carlo estimate of the DSM objective over time, eq. (dsm-loss) with eq. (dsm-weight).

    The training steps of eq. (dsm-steps), for a batch x_0 of shape (N, D):
    t = eps + (1 - eps) u with u ~ U(0, 1) (shape (N,), drawn first), then
    x_1 ~ N(0, I) (shape (N, D), drawn second), both from `generator`; then
    `dsm_loss_per_example`. With lambda_t = sigma_t^2 the per-example loss is
    1/2 ||x_1 + sigma_t s_theta(x_t, t)||^2 / D, the noise-prediction loss of
    Ho et al. written with eps_theta = -sigma_t s_theta.

    Args:
        score_fn: s_theta(x, t), e.g. a `ScoreNet`.
        x0: a batch of data, shape (N, D).
        sde: the forward SDE (gives sigma_t and lambda_t).
        eps: smallest time, t ~ U(eps, 1).
        generator: a torch.Generator (on the CPU or on x0's device) for reproducible draws.
        loss_weight: lambda(t); None means sigma_t^2.
        reduction: "mean" (a 0-d tensor) or "none" (shape (N,)).

    Returns:
        The loss, differentiable with respect to the parameters of score_fn.
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    eps = check_eps(eps)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    n = x0.shape[0]
    draw_device = generator.device if generator is not None else x0.device
    u = torch.rand(n, generator=generator, device=draw_device, dtype=x0.dtype)  # step 2
    x1 = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype)  # step 3
    t = eps + (1.0 - eps) * u.to(x0.device)
    losses = dsm_loss_per_example(score_fn, x0, x1.to(x0.device), t, sde, loss_weight)
    return losses.mean() if reduction == "mean" else losses


def _grid_losses(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    ts: torch.Tensor,
    generator: torch.Generator | None,
    loss_weight: LossWeight | None,
) -> torch.Tensor:
    """Per-example DSM losses at each time of the grid ts, one noise draw per time: shape (len(ts), N)."""
    rows = []
    draw_device = generator.device if generator is not None else x0.device
    for t in ts.tolist():
        x1 = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype).to(x0.device)
        t_batch = torch.full((x0.shape[0],), t, dtype=x0.dtype, device=x0.device)
        rows.append(dsm_loss_per_example(score_fn, x0, x1, t_batch, sde, loss_weight))
    return torch.stack(rows)


@torch.no_grad()
def validation_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    steps: int = 20,
    eps: float = EPS,
    repeats: int = 1,
    generator: torch.Generator | None = None,
    loss_weight: LossWeight | None = None,
) -> float:
    """The DSM objective of eq. (dsm-loss) on held-out data, as a deterministic number.

    The integral over t in [eps, 1] is replaced by the midpoint rule on `steps`
    equal cells, t_k = eps + (1 - eps)(k + 1/2)/steps, and the expectation over
    x_1 by `repeats` draws per time. With a freshly seeded `generator` the noise is
    the same every time it is called, so the values of different epochs differ only
    because the network changed (common random numbers). Estimates the same number
    as the mean of `dsm_loss` (without its noise in t).

    Args:
        score_fn: s_theta(x, t).
        sde: the forward SDE.
        x0: held-out data, shape (N, D).
        steps: number of times on the grid (>= 1).
        eps: smallest time.
        repeats: noise draws per time and example (>= 1).
        generator: a torch.Generator; pass a fresh `torch.Generator().manual_seed(k)`.
        loss_weight: lambda(t); None means sigma_t^2.

    Returns:
        The mean loss per example and coordinate, a float.
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    check_positive_int(steps, "steps")
    check_positive_int(repeats, "repeats")
    eps = check_eps(eps)
    ts = eps + (1.0 - eps) * (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    total = 0.0
    for _ in range(repeats):
        total += _grid_losses(score_fn, sde, x0, ts, generator, loss_weight).mean().item()
    return total / repeats


@torch.no_grad()
def log_prob_proxy(
    score_fn: ScoreFn,
    sde: SDE,
    x0: torch.Tensor,
    steps: int = 20,
    eps: float = EPS,
    generator: torch.Generator | None = None,
    loss_weight: LossWeight | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The original notebook's "log-likelihood proxy": the DSM loss summed over a fixed time grid.

    For each of the `steps` times t_k = linspace(eps, 1, steps) (the original uses
    its number of sampling steps T = 20 here), draw one x_1 ~ N(0, I) per example
    and add up 1/2 lambda(t_k) ||s_theta(x_t, t_k) + x_1 / sigma_t||^2 / D. By
    default lambda is the original's effective weight sigma_t^4
    (`original_loss_weight`), so this reproduces the number the original reports.

    What it is: a (scaled, noisy) Riemann sum of a weighted DSM objective, a
    useful score for comparing two models *with the same sde and weight*. What it
    is not: a log-likelihood, nor a bound on one. The bound of Song et al. (2021),
    -ln p_0(x_0) <= -E ln p_1(x_1) + integral of 1/2 g(t)^2 E||s_theta - grad ln p_0t||^2 dt
    + const, needs lambda_t = g(t)^2 (for the VE SDE g^2 = 1 + 2 ln(sigma) sigma_t^2),
    the squared norm summed (not averaged) over coordinates, the integral (a
    sum times 1/steps), the prior term and the constant; the proxy has none of these.
    Chapter "Other SDEs and likelihood" computes the exact ln p.

    Args:
        score_fn, sde, x0 (N, D), eps, generator: as in `validation_loss`.
        steps: number of grid times (>= 2), including both ends eps and 1.
        loss_weight: lambda(t); None means `original_loss_weight(sde)`.
        reduction: "mean" (0-d tensor, averaged over examples) or "none" (shape (N,)).

    Returns:
        The proxy (lower is better in the original's training loop).
    """
    check_sde(sde)
    check_tensor(x0, "x0", ndim=2)
    check_positive_int(steps, "steps", minimum=2)
    eps = check_eps(eps)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    weight = original_loss_weight(sde) if loss_weight is None else loss_weight
    ts = torch.linspace(eps, 1.0, steps, dtype=torch.float64)
    proxy = _grid_losses(score_fn, sde, x0, ts, generator, weight).sum(dim=0)
    return proxy.mean() if reduction == "mean" else proxy


# ---------------------------------------------------------------------------
# the training loop
# ---------------------------------------------------------------------------


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


def _check_data(data: torch.Tensor, name: str, dim: int | None) -> torch.Tensor:
    check_tensor(data, name, ndim=2)
    if data.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got shape {tuple(data.shape)}")
    if dim is not None and data.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}) to match the model, got {tuple(data.shape)}")
    return data


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
) -> dict:
    """Fit a score network by minimising `dsm_loss` (eq. (dsm-loss), steps of eq. (dsm-steps)).

    Each epoch shuffles `train_data`, takes Adam steps on mini-batches of
    `dsm_loss`, updates the EMA of the weights, then (every `val_every` epochs) evaluates `validation_loss` on
    `val_data` with a fixed noise seed, for the raw weights and for the EMA
    weights. Training stops when the monitored validation loss (EMA weights if
    `ema_decay` is set, else the raw ones) has not improved for `patience`
    epochs, after `epochs` epochs, or after `max_seconds`. At the end the model
    holds the best monitored weights and is in eval mode.

    Args:
        model: the network, called as model(x, t); trained in place.
        sde: the forward SDE.
        train_data, val_data: tensors of shape (N, D), D the model's dimension.
        epochs: maximum number of passes over train_data (>= 1).
        batch_size: examples per step (>= 1).
        lr: Adam's learning rate (> 0).
        patience: epochs without improvement before stopping (>= 1).
        ema_decay: EMA decay in (0, 1), or None for no EMA.
        eps: smallest time.
        loss_weight: lambda(t); None means sigma_t^2.
        optimizer: "adam" (default) or "adamax" (the original notebook's choice).
        lr_schedule: "constant", or "cosine": lr (1 + cos(pi k / K)) / 2 at step k of
            K = epochs * ceil(N / batch_size) planned steps (it decays to 0 at the last epoch).
        val_steps, val_repeats: the time grid and noise draws of `validation_loss`.
        val_every: validate after every `val_every`-th epoch (and after the last one);
            validation on 350 digits x 20 times costs more than an epoch of training.
        max_seconds: wall-clock budget, or None.
        seed: seeds the shuffling, the times and the noise (not the initial weights:
            seed torch before building the model).
        device: where to train ("cpu", "cuda", ...); the data are moved there.
        progress: show a tqdm progress bar.

    Returns:
        history: a dict with per-epoch lists "epoch", "train_loss" (mean mini-batch
        loss) and "seconds" (elapsed), per-validation lists "val_epoch", "val_loss"
        (raw weights) and "val_loss_ema" (EMA weights, NaN without EMA), and
        "best_epoch", "best_val_loss", "monitor" ("ema" or "raw"), "stopped" (why
        training stopped), "steps" (optimiser steps taken).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_sde(sde)
    dim = getattr(model, "dim", None)
    train_data = _check_data(train_data, "train_data", dim)
    val_data = _check_data(val_data, "val_data", train_data.shape[1])
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(patience, "patience")
    check_positive_int(val_steps, "val_steps")
    check_positive_int(val_repeats, "val_repeats")
    check_positive_int(val_every, "val_every")
    check_positive_int(seed, "seed", minimum=0)
    eps = check_eps(eps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a float > 0, got {lr!r}")
    if optimizer not in ("adam", "adamax"):
        raise ValueError(f"optimizer must be 'adam' or 'adamax', got {optimizer!r}")
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a number > 0 or None, got {max_seconds!r}")
    device = torch.device(device)

    model.to(device)
    train_data = train_data.to(device)
    val_data = val_data.to(device)
    opt_class = torch.optim.Adam if optimizer == "adam" else torch.optim.Adamax
    opt = opt_class(model.parameters(), lr=lr)
    ema = EMA(model, ema_decay) if ema_decay is not None else None
    generator = torch.Generator().manual_seed(seed)  # CPU: draws are moved to `device`

    def evaluate(net: nn.Module) -> float:
        net.eval()
        val_generator = torch.Generator().manual_seed(seed + 1)  # the same noise every epoch
        return validation_loss(net, sde, val_data, val_steps, eps, val_repeats, val_generator, loss_weight)

    history: dict = {"epoch": [], "train_loss": [], "seconds": [], "val_epoch": [], "val_loss": [], "val_loss_ema": []}
    monitor = "ema" if ema is not None else "raw"
    best_val, best_epoch, best_state = math.inf, -1, None
    stopped, steps_taken = "epochs", 0
    start = time.perf_counter()
    n = train_data.shape[0]
    planned_steps = epochs * math.ceil(n / batch_size)

    from tqdm.auto import tqdm

    bar = tqdm(range(epochs), desc="training", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            x0 = train_data[order[i : i + batch_size]]  # step 1
            if lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * steps_taken / planned_steps))
            loss = dsm_loss(model, x0, sde, eps, generator, loss_weight=loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # step 7: gradient ...
            opt.step()  # ... and parameter update
            steps_taken += 1
            if ema is not None:
                ema.update(model)
            total += loss.item() * x0.shape[0]
            count += x0.shape[0]
        history["epoch"].append(epoch)
        history["train_loss"].append(total / count)
        history["seconds"].append(time.perf_counter() - start)
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if (epoch + 1) % val_every == 0 or epoch == epochs - 1 or out_of_time:
            val_raw = evaluate(model)
            val_ema = evaluate(ema.shadow) if ema is not None else math.nan
            watched = val_ema if ema is not None else val_raw
            history["val_epoch"].append(epoch)
            history["val_loss"].append(val_raw)
            history["val_loss_ema"].append(val_ema)
            if watched < best_val:
                best_val, best_epoch = watched, epoch
                source = ema.shadow if ema is not None else model
                best_state = {k: v.detach().clone() for k, v in source.state_dict().items()}
            bar.set_postfix(train=f"{total / count:.4f}", val=f"{watched:.4f}", best=f"{best_val:.4f}")
        if best_epoch >= 0 and epoch - best_epoch >= patience:
            stopped = "patience"
            break
        if out_of_time:
            stopped = "max_seconds"
            break
    bar.close()

    model.load_state_dict(best_state)
    model.eval()
    history.update(
        best_epoch=best_epoch, best_val_loss=best_val, monitor=monitor, stopped=stopped, steps=steps_taken
    )
    return history


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------

CHECKPOINT_FORMAT = "sbgm_edu-checkpoint-v1"
_MODEL_CLASSES: dict[str, type[nn.Module]] = {"ScoreNet": ScoreNet, "OriginalScoreNet": OriginalScoreNet}
_KNOWN_DATA_MAPS = (DIGITS_DATA_MAP, "2x/17-1", "none")
PRETRAINED_PATH = Path(__file__).parent / "checkpoints" / "scorenet_digits_ve25.pt"
"""The shipped checkpoint (package data), made by scripts/train_pretrained.py."""


class CheckpointError(ValueError):
    """A checkpoint that is malformed or does not match the model or settings expected."""


def _model_settings(model: nn.Module, sde: SDE) -> dict:
    name = type(model).__name__
    if name not in _MODEL_CLASSES or not isinstance(model, _MODEL_CLASSES[name]):
        raise TypeError(f"model must be one of {sorted(_MODEL_CLASSES)}, got {name}")
    if not isinstance(sde, VESDE):
        raise TypeError(f"only VESDE checkpoints are supported, got sde {type(sde).__name__}")
    if isinstance(model, ScoreNet) and (not isinstance(model.sde, VESDE) or model.sde.sigma != sde.sigma):
        raise ValueError(f"the model was built for {model.sde!r} but sde is {sde!r}; they must match")
    return {"model_class": name, "model_kwargs": model.settings(), "sde_class": "VESDE", "sigma": sde.sigma}


def save_checkpoint(path: str | Path, model: nn.Module, sde: SDE, settings: dict | None = None) -> Path:
    """Save the weights of `model` with the settings needed to rebuild it.

    Writes `path` (a .pt file, loadable with torch.load(weights_only=True)) holding
    {"format", "settings", "state_dict"}, and, next to it, the same settings as
    readable JSON (`path` with suffix .json). Tensors are stored on the CPU.

    Args:
        path: file to write, e.g. "model.pt".
        model: a `ScoreNet` or `OriginalScoreNet`.
        sde: the VESDE it was trained for (its sigma is stored).
        settings: extra JSON-serialisable facts (e.g. "data_map", training
            hyper-parameters, validation loss). "data_map" defaults to "2x/16-1".

    Returns:
        The path of the .pt file.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"path must end in .pt, got {str(path)!r}")
    full = {"data_map": DIGITS_DATA_MAP, **(settings or {}), **_model_settings(model, sde)}
    if full["data_map"] not in _KNOWN_DATA_MAPS:
        raise ValueError(f"settings['data_map'] must be one of {_KNOWN_DATA_MAPS}, got {full['data_map']!r}")
    try:
        text = json.dumps(full, indent=2, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"settings must be JSON-serialisable: {err}") from err
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "settings": text, "state_dict": state}, path)
    path.with_suffix(".json").write_text(text + "\n")
    return path


def _build(settings: dict) -> tuple[nn.Module, VESDE]:
    missing = [k for k in ("model_class", "model_kwargs", "sde_class", "sigma", "data_map") if k not in settings]
    if missing:
        raise CheckpointError(f"checkpoint settings lack {missing}")
    if settings["sde_class"] != "VESDE":
        raise CheckpointError(f"checkpoint sde_class must be 'VESDE', got {settings['sde_class']!r}")
    if settings["model_class"] not in _MODEL_CLASSES:
        raise CheckpointError(f"checkpoint model_class must be one of {sorted(_MODEL_CLASSES)}")
    if settings["data_map"] not in _KNOWN_DATA_MAPS:
        raise CheckpointError(f"checkpoint data_map must be one of {_KNOWN_DATA_MAPS}, got {settings['data_map']!r}")
    try:
        sde = VESDE(settings["sigma"])
        kwargs = dict(settings["model_kwargs"])
        if settings["model_class"] == "ScoreNet":
            model = ScoreNet(sde, **kwargs)
        else:
            model = OriginalScoreNet(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint settings cannot build the model: {err}") from err
    return model, sde


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    expected_settings: dict | None = None,
) -> tuple[nn.Module, VESDE, dict]:
    """Load a checkpoint written by `save_checkpoint`, checking it before trusting it.

    Loads with torch.load(weights_only=True) (no code is executed) and
    `map_location` (so a checkpoint saved on a GPU loads on the CPU). Rejected with
    `CheckpointError` (a ValueError): a file that is not an sbgm_edu checkpoint;
    settings that are missing, unknown or cannot build the model; a .json file
    next to it whose settings differ from those inside the .pt; weights with
    missing or unexpected names, wrong shapes or non-finite values; settings that
    differ from `expected_settings`.

    Args:
        path: the .pt file.
        map_location: device the weights are loaded onto.
        expected_settings: settings the caller requires, e.g. {"sigma": 25.0}.

    Returns:
        (model, sde, settings); the model is on `map_location` and in eval mode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling refused or file corrupt
        raise CheckpointError(f"{path} is not a loadable sbgm_edu checkpoint: {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an sbgm_edu checkpoint (format {CHECKPOINT_FORMAT!r} expected)")
    try:
        settings = json.loads(blob["settings"])
        state = blob["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: malformed settings or state_dict: {err}") from err
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            side_settings = json.loads(sidecar.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{sidecar} is not valid JSON: {err}") from err
        if side_settings != settings:
            keys = sorted(k for k in set(settings) | set(side_settings) if settings.get(k) != side_settings.get(k))
            raise CheckpointError(f"{sidecar} does not match the settings stored in {path.name}; differing: {keys}")
    for key, value in (expected_settings or {}).items():
        if settings.get(key) != value:
            raise CheckpointError(f"checkpoint setting {key!r} is {settings.get(key)!r}, expected {value!r}")
    model, sde = _build(settings)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match {settings['model_class']}: missing {missing}, "
                              f"unexpected {unexpected}")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != own[name].shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            want = tuple(own[name].shape)
            raise CheckpointError(f"{path}: weight {name!r} has shape {got}, the settings need {want}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: weight {name!r} holds NaN or inf")
    model.load_state_dict(state)
    model.to(map_location).eval()
    return model, sde, settings


def load_pretrained(map_location: str | torch.device = "cpu") -> tuple[nn.Module, VESDE]:
    """The shipped `ScoreNet` trained on the digits with the VESDE(sigma = 25), ready to sample.

    Made by `python scripts/train_pretrained.py` (fixed seeds); its settings,
    training time and validation loss are in sbgm_edu/checkpoints/scorenet_digits_ve25.json.
    The model is in eval mode with requires_grad off (sampling builds no graph;
    gradients with respect to x still work).

    Returns:
        (model, sde): model(x, t) is the score estimate for x of shape (N, 64) in
        the [-1, 1] pixel space of `sbgm_edu.data.load_digits`.
    """
    model, sde, _ = load_checkpoint(PRETRAINED_PATH, map_location=map_location)
    model.requires_grad_(False)
    return model, sde


__all__ = [
    "EPS",
    "EMA",
    "CheckpointError",
    "dsm_loss",
    "dsm_loss_per_example",
    "load_checkpoint",
    "load_pretrained",
    "log_prob_proxy",
    "original_loss_weight",
    "save_checkpoint",
    "train",
    "validation_loss",
]

