"""Checkpoints: weights plus the settings needed to rebuild the model, checked when loaded.

- `save_checkpoint(path, model, sde, settings, overwrite=False)` writes `path` (.pt, loadable
  with torch.load(weights_only=True)) and the same settings as readable JSON next to it
  (`<stem>.json`), each atomically (a temporary file, then `os.replace`).
- `load_checkpoint(path)` rebuilds the model from its settings through `MODEL_CLASSES`
  (name -> class) and the SDE through `SDE_CLASSES`, and checks everything before trusting it.
- `load_pretrained(name)` loads one of the checkpoints shipped in sbgm_edu/checkpoints/
  (`PRETRAINED`: name -> file).

A new network needs one entry in `MODEL_CLASSES`; its class must have a `settings()` method
returning its constructor arguments (JSON), and take the SDE as its argument `sde` if it needs it.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sbgm_edu.data import DIGITS_DATA_MAP
from sbgm_edu.nets import ConditionalScoreNet, OriginalScoreNet, ScoreNet
from sbgm_edu.sde import SDE, VESDE, VPSDE, SubVPSDE, check_sde

CHECKPOINT_FORMAT = "sbgm_edu-checkpoint-v1"

MODEL_CLASSES: dict[str, type[nn.Module]] = {"ScoreNet": ScoreNet, "OriginalScoreNet": OriginalScoreNet}
MODEL_CLASSES["ConditionalScoreNet"] = ConditionalScoreNet  # chapter "Controllable generation"
"""Networks a checkpoint can hold, by class name. Add a network with one entry here."""

SDE_CLASSES: dict[str, tuple[type[SDE], tuple[str, ...]]] = {
    "VESDE": (VESDE, ("sigma",)),
    "VPSDE": (VPSDE, ("beta_min", "beta_max")),
    "SubVPSDE": (SubVPSDE, ("beta_min", "beta_max")),
}
"""SDEs a checkpoint can hold: name -> (class, the constructor arguments stored in the settings)."""

KNOWN_DATA_MAPS = (DIGITS_DATA_MAP, "2x/17-1", "none")

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
PRETRAINED: dict[str, str] = {
    "unconditional": "scorenet_digits_ve25.pt",
    "conditional": "conditional_scorenet_digits_ve25.pt",
    "likelihood": "scorenet_digits_ve25_likelihood.pt",
}
"""The shipped checkpoints (package data in sbgm_edu/checkpoints/), by name."""

PRETRAINED_PATH = CHECKPOINT_DIR / PRETRAINED["unconditional"]
"""The shipped unconditional checkpoint, made by scripts/train_pretrained.py."""


class CheckpointError(ValueError):
    """A checkpoint that is malformed or does not match the model or settings expected."""


# ---------------------------------------------------------------------------
# settings: what is stored to rebuild the model and the SDE
# ---------------------------------------------------------------------------


def sde_settings(sde: SDE) -> dict:
    """{"sde_class": name, <constructor arguments>} of an SDE of `SDE_CLASSES`."""
    name = type(sde).__name__
    if name not in SDE_CLASSES or type(sde) is not SDE_CLASSES[name][0]:
        raise TypeError(f"sde must be one of {sorted(SDE_CLASSES)} to be saved, got {name}")
    return {"sde_class": name, **{arg: getattr(sde, arg) for arg in SDE_CLASSES[name][1]}}


def model_settings(model: nn.Module, sde: SDE) -> dict:
    """{"model_class", "model_kwargs", "sde_class", <SDE arguments>} for `save_checkpoint`."""
    name = type(model).__name__
    if name not in MODEL_CLASSES or type(model) is not MODEL_CLASSES[name]:
        raise TypeError(f"model must be one of {sorted(MODEL_CLASSES)}, got {name}")
    own_sde = getattr(model, "sde", None)
    if own_sde is not None and (type(own_sde) is not type(sde) or sde_settings(own_sde) != sde_settings(sde)):
        raise ValueError(f"the model was built for {own_sde!r} but sde is {sde!r}; they must match")
    return {"model_class": name, "model_kwargs": model.settings(), **sde_settings(sde)}


def _check_finite_settings(value: object, where: str = "settings") -> None:
    """Every number in the (nested) settings must be finite: JSON files may hold Infinity or NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"checkpoint {where} is {value}; settings must be finite")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _check_finite_settings(item, f"{where}[{key!r}]")


def _builds_with_sde(cls: type[nn.Module]) -> bool:
    return "sde" in inspect.signature(cls).parameters


def build_from_settings(settings: dict) -> tuple[nn.Module, SDE]:
    """A fresh model and its SDE from checkpoint settings (the inverse of `model_settings`)."""
    missing = [k for k in ("model_class", "model_kwargs", "sde_class", "data_map") if k not in settings]
    if missing:
        raise CheckpointError(f"checkpoint settings lack {missing}")
    if settings["sde_class"] not in SDE_CLASSES:
        raise CheckpointError(
            f"checkpoint sde_class must be one of {sorted(SDE_CLASSES)}, got {settings['sde_class']!r}"
        )
    if settings["model_class"] not in MODEL_CLASSES:
        raise CheckpointError(f"checkpoint model_class must be one of {sorted(MODEL_CLASSES)}")
    if settings["data_map"] not in KNOWN_DATA_MAPS:
        raise CheckpointError(f"checkpoint data_map must be one of {KNOWN_DATA_MAPS}, got {settings['data_map']!r}")
    _check_finite_settings(settings)
    sde_class, sde_args = SDE_CLASSES[settings["sde_class"]]
    model_class = MODEL_CLASSES[settings["model_class"]]
    try:
        sde = sde_class(**{arg: settings[arg] for arg in sde_args})
        kwargs = dict(settings["model_kwargs"])
        model = model_class(sde, **kwargs) if _builds_with_sde(model_class) else model_class(**kwargs)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint settings cannot build the model: {err!r}") from err
    return model, sde


# ---------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) into a temporary file next to `path`, then rename it to `path` (os.replace, atomic)."""
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(
    path: str | Path, model: nn.Module, sde: SDE, settings: dict | None = None, *, overwrite: bool = False
) -> Path:
    """Save the weights of `model` with the settings needed to rebuild it.

    Writes `path` (a .pt file, loadable with torch.load(weights_only=True)) holding
    {"format", "settings", "state_dict"}, and, next to it, the same settings as
    readable JSON (`path` with suffix .json). Tensors are stored on the CPU. Each file is
    written to a temporary file first and renamed (os.replace), so a crash never leaves a
    half-written checkpoint; a crash between the two renames leaves a .json that
    `load_checkpoint` rejects as not matching.

    Args:
        path: file to write, e.g. "model.pt".
        model: a network of `MODEL_CLASSES` (e.g. `ScoreNet`).
        sde: the SDE it was trained for (its class and arguments are stored).
        settings: extra JSON-serialisable facts (e.g. "data_map", training
            hyper-parameters, validation loss). "data_map" defaults to "2x/16-1".
        overwrite: replace an existing `path` or .json sidecar; if False (default), either
            one existing raises FileExistsError and nothing is written.

    Returns:
        The path of the .pt file.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"path must end in .pt, got {str(path)!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    check_sde(sde)
    if settings is not None and not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict or None, got {type(settings).__name__}")
    full = {"data_map": DIGITS_DATA_MAP, **(settings or {}), **model_settings(model, sde)}
    if full["data_map"] not in KNOWN_DATA_MAPS:
        raise ValueError(f"settings['data_map'] must be one of {KNOWN_DATA_MAPS}, got {full['data_map']!r}")
    try:
        text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"settings must be JSON-serialisable with finite numbers: {err}") from err
    sidecar = path.with_suffix(".json")
    for target in (path, sidecar):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": CHECKPOINT_FORMAT, "settings": text, "state_dict": state}
    _write_atomically(path, lambda tmp: torch.save(blob, tmp))
    _write_atomically(sidecar, lambda tmp: tmp.write_text(text + "\n"))
    return path


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def _check_map_location(map_location: str | torch.device) -> torch.device:
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"map_location must name a torch device such as 'cpu', got {map_location!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location={str(map_location)!r}, but this PyTorch build has no CUDA device; use 'cpu'")
    return device


def _read_blob(path: Path, device: torch.device) -> tuple[dict, dict]:
    """(settings, state_dict) of a checkpoint file, or CheckpointError."""
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling refused or file corrupt
        raise CheckpointError(f"{path} is not a loadable sbgm_edu checkpoint: {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an sbgm_edu checkpoint (format {CHECKPOINT_FORMAT!r} expected)")
    try:
        settings = json.loads(blob["settings"])
        state = blob["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: malformed settings or state_dict: {err}") from err
    if not isinstance(settings, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: settings must be a JSON object and state_dict a dict")
    return settings, state


def _check_sidecar(path: Path, settings: dict) -> None:
    """The .json next to `path`, if present, must hold exactly `settings`."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return
    try:
        side_settings = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{sidecar} is not valid JSON: {err}") from err
    if not isinstance(side_settings, dict):
        raise CheckpointError(f"{sidecar} must hold a JSON object of settings, got {type(side_settings).__name__}")
    if side_settings != settings:
        keys = sorted(k for k in set(settings) | set(side_settings) if settings.get(k) != side_settings.get(k))
        raise CheckpointError(f"{sidecar} does not match the settings stored in {path.name}; differing: {keys}")


def _check_weights(path: Path, model: nn.Module, state: dict, model_class: str) -> None:
    """Names, shapes and finiteness of the stored weights against a freshly built model."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match {model_class}: missing {missing}, "
                              f"unexpected {unexpected}")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != own[name].shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            want = tuple(own[name].shape)
            raise CheckpointError(f"{path}: weight {name!r} has shape {got}, the settings need {want}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: weight {name!r} holds NaN or inf")


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    expected_settings: dict | None = None,
) -> tuple[nn.Module, SDE, dict]:
    """Load a checkpoint written by `save_checkpoint`, checking it before trusting it.

    Loads with torch.load(weights_only=True) (no code is executed) and `map_location` (so a
    checkpoint saved on a GPU loads on the CPU; a CUDA map_location on a build without CUDA is
    a ValueError). Rejected with `CheckpointError` (a ValueError): a file that is not an
    sbgm_edu checkpoint; settings that are missing, unknown, not finite or cannot build the
    model; a .json file next to it that is not a JSON object or whose settings differ from
    those inside the .pt; weights with missing or unexpected names, wrong shapes or
    non-finite values; settings that differ from `expected_settings`.

    Args:
        path: the .pt file.
        map_location: device the weights are loaded onto.
        expected_settings: settings the caller requires, e.g. {"sigma": 25.0}.

    Returns:
        (model, sde, settings); the model is on `map_location` and in eval mode.
    """
    path = Path(path)
    device = _check_map_location(map_location)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    settings, state = _read_blob(path, device)
    _check_sidecar(path, settings)
    for key, value in (expected_settings or {}).items():
        if settings.get(key) != value:
            raise CheckpointError(f"checkpoint setting {key!r} is {settings.get(key)!r}, expected {value!r}")
    model, sde = build_from_settings(settings)
    _check_weights(path, model, state, settings["model_class"])
    model.load_state_dict(state)
    model.to(device).eval()
    return model, sde, settings


def load_pretrained(name: str = "unconditional", map_location: str | torch.device = "cpu") -> tuple[nn.Module, SDE]:
    """A network shipped with the package, trained on the digits, ready to sample.

    Names (`PRETRAINED`): "unconditional", the `ScoreNet` of chapter "Training a score model"
    for the VESDE(sigma = 25), made by `python scripts/train_pretrained.py` (fixed seeds; its
    settings, training time and validation loss are in sbgm_edu/checkpoints/scorenet_digits_ve25.json);
    "conditional", a network of digit labels (called as model(x, t, labels)); "likelihood", a
    network trained with the likelihood weight g(t)^2. The model is in eval mode with
    requires_grad off (sampling builds no graph; gradients with respect to x still work).

    Returns:
        (model, sde): model(x, t) is the score estimate for x of shape (N, 64) in
        the [-1, 1] pixel space of `sbgm_edu.data.load_digits`.
    """
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {sorted(PRETRAINED)}, got {name!r}")
    path = CHECKPOINT_DIR / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained {name!r} checkpoint is not shipped in this version: "
                                f"{path} is missing")
    model, sde, _ = load_checkpoint(path, map_location=map_location)
    model.requires_grad_(False)
    return model, sde


__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_FORMAT",
    "MODEL_CLASSES",
    "PRETRAINED",
    "PRETRAINED_PATH",
    "SDE_CLASSES",
    "CheckpointError",
    "build_from_settings",
    "load_checkpoint",
    "load_pretrained",
    "model_settings",
    "save_checkpoint",
]
