"""Tests of sbgm_edu.checkpoints: round trips, tampered files, the shipped checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from dsm_oracles import gaussian_score, tiny_setup

from sbgm_edu.checkpoints import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from sbgm_edu.data import load_digits
from sbgm_edu.losses import validation_loss
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.sde import VESDE
from sbgm_edu.train import EMA


@pytest.mark.parametrize("kind", ["ScoreNet", "OriginalScoreNet"])
def test_checkpoint_round_trip(tmp_path, kind):
    net, sde, x_train, _ = tiny_setup()
    if kind == "OriginalScoreNet":
        torch.manual_seed(0)
        net = OriginalScoreNet(hidden=16)
    path = save_checkpoint(tmp_path / "m.pt", net, sde, {"note": "test"})
    loaded, loaded_sde, settings = load_checkpoint(path)
    assert type(loaded) is type(net) and loaded_sde.sigma == 25.0 and settings["note"] == "test"
    assert json.loads(path.with_suffix(".json").read_text()) == settings
    x = x_train[:7]
    t = torch.linspace(0.01, 1.0, 7)
    torch.testing.assert_close(loaded(x, t), net(x, t), rtol=0, atol=0)
    assert not loaded.training
    # the file holds only tensors and plain data: it loads with weights_only=True
    blob = torch.load(path, weights_only=True, map_location="cpu")
    assert set(blob) == {"format", "settings", "state_dict"}


def _saved(tmp_path):
    net, sde, _, _ = tiny_setup()
    return save_checkpoint(tmp_path / "m.pt", net, sde), net, sde


def test_tampered_json_is_rejected(tmp_path):
    path, _, _ = _saved(tmp_path)
    side = path.with_suffix(".json")
    settings = json.loads(side.read_text())
    settings["sigma"] = 50.0
    side.write_text(json.dumps(settings))
    with pytest.raises(CheckpointError, match=r"does not match.*sigma"):
        load_checkpoint(path)


def test_wrong_shapes_and_missing_weights_are_rejected(tmp_path):
    path, _, _ = _saved(tmp_path)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["mlp.0.weight"] = torch.zeros(3, 3)
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="mlp.0.weight.*shape"):
        load_checkpoint(path)
    del blob["state_dict"]["mlp.0.weight"]
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_settings_that_do_not_fit_the_weights_are_rejected(tmp_path):
    path, _, _ = _saved(tmp_path)
    blob = torch.load(path, weights_only=True)
    settings = json.loads(blob["settings"])
    settings["model_kwargs"]["hidden"] = 64  # the weights are for hidden = 32
    blob["settings"] = json.dumps(settings)
    torch.save(blob, path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)
    settings["model_kwargs"]["width"] = 3  # not an argument of ScoreNet
    blob["settings"] = json.dumps(settings)
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="cannot build"):
        load_checkpoint(path)
    settings["sigma"] = 0.5
    blob["settings"] = json.dumps(settings)
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="sigma"):
        load_checkpoint(path)


def test_expected_settings_and_foreign_files_are_rejected(tmp_path):
    path, _, _ = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="'sigma' is 25.0, expected 1.01"):
        load_checkpoint(path, expected_settings={"sigma": 1.01})
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not an sbgm_edu checkpoint"):
        load_checkpoint(other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "sbgm_edu-checkpoint-v1", "settings": EMA}, pickled)  # arbitrary Python object
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=".pt"):
        save_checkpoint(tmp_path / "m.pth", OriginalScoreNet(hidden=4), VESDE(2.0))


def test_pretrained_checkpoint_beats_the_gaussian_score_on_held_out_digits():
    model, sde = load_pretrained()
    assert isinstance(model, ScoreNet) and isinstance(sde, VESDE) and sde.sigma == 25.0
    assert not model.training
    x_val = load_digits("val")
    assert model(x_val[:3], 0.5).shape == (3, 64)
    mu = load_digits("train").mean(0)
    s = float(((load_digits("train") - mu) ** 2).mean().sqrt())
    gauss = gaussian_score(mu, s, sde)  # the exact score if the digits were N(mu, s^2 I)
    trained = validation_loss(model, sde, x_val, generator=torch.Generator().manual_seed(0))
    baseline = validation_loss(gauss, sde, x_val, generator=torch.Generator().manual_seed(0))
    assert trained < 0.75 * baseline


def test_pretrained_names_unknown_and_not_yet_shipped():
    from sbgm_edu.checkpoints import CHECKPOINT_DIR, PRETRAINED

    with pytest.raises(ValueError, match="name must be one of"):
        load_pretrained("best")
    for name, file in PRETRAINED.items():
        if not (CHECKPOINT_DIR / file).is_file():
            with pytest.raises(FileNotFoundError, match=f"{name}.*not shipped.*{file}"):
                load_pretrained(name)
    model, sde = load_pretrained("unconditional")
    assert isinstance(model, ScoreNet) and not any(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------- reliability (issue: defects of 7)


def test_save_refuses_to_replace_an_existing_checkpoint_or_sidecar(tmp_path):
    # Before the fix save_checkpoint silently replaced both files, and the .json may be an unrelated user file.
    net, sde, _, _ = tiny_setup()
    path = save_checkpoint(tmp_path / "m.pt", net, sde)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(path, OriginalScoreNet(hidden=4), sde)
    assert path.read_bytes() == before
    user_file = tmp_path / "notes.json"
    user_file.write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match="notes.json"):
        save_checkpoint(tmp_path / "notes.pt", net, sde)
    assert user_file.read_text() == '{"mine": 1}' and not (tmp_path / "notes.pt").exists()
    torch.manual_seed(5)
    other = OriginalScoreNet(hidden=4)
    save_checkpoint(path, other, sde, overwrite=True)
    assert isinstance(load_checkpoint(path)[0], OriginalScoreNet)


def test_save_is_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    net, sde, _, _ = tiny_setup()
    path = save_checkpoint(tmp_path / "m.pt", net, sde)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, net, sde, overwrite=True)
    assert path.read_bytes() == before  # not the half-written bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pt"]  # no temporary file left


def test_infinite_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="data_std must be a finite float"):
        ScoreNet(VESDE(25.0), data_std=float("inf"))
    path, _, _ = _saved(tmp_path)
    blob = torch.load(path, weights_only=True)
    settings = json.loads(blob["settings"])
    settings["model_kwargs"]["data_std"] = float("inf")  # json writes Infinity, and reads it back
    blob["settings"] = json.dumps(settings)
    torch.save(blob, path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="data_std"):
        load_checkpoint(path)


def test_cuda_map_location_on_a_cpu_build_is_reported_as_such(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this build has CUDA")
    path, _, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match="no CUDA") as info:
        load_checkpoint(path, map_location="cuda")
    assert not isinstance(info.value, CheckpointError)  # the file is fine


@pytest.mark.parametrize("text", ["[1, 2]", "5", '"settings"', "null"])
def test_sidecar_of_the_wrong_json_type_is_a_clear_error(tmp_path, text):
    path, _, _ = _saved(tmp_path)
    path.with_suffix(".json").write_text(text)
    with pytest.raises(CheckpointError, match="JSON object"):
        load_checkpoint(path)
