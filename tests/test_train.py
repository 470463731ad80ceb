"""Tests of sbgm_edu.train: the DSM loss against closed forms, training, EMA and checkpoints."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sbgm_edu.data import load_digits
from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.sde import VESDE
from sbgm_edu.train import (
    EMA,
    CheckpointError,
    dsm_loss,
    load_checkpoint,
    load_pretrained,
    log_prob_proxy,
    save_checkpoint,
    train,
    validation_loss,
)


def sigma_t_numpy(sigma, t):
    """sigma_t of eq. (ve-sigma-t), written independently of sbgm_edu."""
    return np.sqrt((sigma ** (2 * np.asarray(t, dtype=np.float64)) - 1) / (2 * np.log(sigma)))


def gaussian_score(mu, s, sde):
    """Exact score of N(mu, s^2 I) data diffused by the VE SDE: -(x - mu) / (s^2 + sigma_t^2)."""

    def score(x, t):
        var = s**2 + sde.marginal_std(t).to(x.dtype) ** 2
        return -(x - mu) / (var[:, None] if var.ndim == 1 else var)

    return score


def expected_loss_of_exact_score(sigma, s, eps):
    """E[dsm_loss] for the exact score on N(mu, s^2 I) data, lambda_t = sigma_t^2.

    Given t, sigma_t s_theta + x_1 = (s^2 x_1 - sigma_t s z) / (s^2 + sigma_t^2) with z, x_1 independent
    standard normal, so its mean square per coordinate is s^2 / (s^2 + sigma_t^2) and the loss has mean
    1/2 s^2 / (s^2 + sigma_t^2); then average over t ~ U(eps, 1).
    """
    value, _ = quad(lambda t: 0.5 * s**2 / (s**2 + sigma_t_numpy(sigma, t) ** 2), eps, 1.0)
    return value / (1.0 - eps)


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks train faster on one thread (and the timings of a busy machine vary less)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- the loss


def test_dsm_loss_matches_hand_computation_for_fixed_seed():
    sigma, eps, n, d = 3.0, 1e-5, 4, 3
    sde = VESDE(sigma)
    x0 = torch.tensor([[0.5, -1.0, 0.0], [1.0, 1.0, 1.0], [-0.5, 0.2, 0.3], [0.0, 0.0, -2.0]])
    score_fn = lambda x, t: -x / 2.0 + t[:, None]  # noqa: E731  (any fixed function will do)
    got = dsm_loss(score_fn, x0, sde, eps, torch.Generator().manual_seed(7))

    # by hand: the documented draws, u first (N,), then x_1 (N, D), from the same seed
    g = torch.Generator().manual_seed(7)
    u = torch.rand(n, generator=g).numpy().astype(np.float64)
    x1 = torch.randn(n, d, generator=g).numpy().astype(np.float64)
    t = eps + (1 - eps) * u
    st = sigma_t_numpy(sigma, t)[:, None]
    xt = x0.numpy() + st * x1
    s = -xt / 2.0 + t[:, None]
    want = np.mean(0.5 * st[:, 0] ** 2 * np.mean((s + x1 / st) ** 2, axis=1))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_dsm_loss_of_exact_score_has_closed_form_mean():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 50_000, 2
    sde = VESDE(sigma)
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.3, -0.7], dtype=torch.float64)
    x0 = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    losses = dsm_loss(gaussian_score(mu, s, sde), x0, sde, eps, g, reduction="none")
    assert losses.shape == (n,)
    want = expected_loss_of_exact_score(sigma, s, eps)
    standard_error = losses.std().item() / math.sqrt(n)
    assert abs(losses.mean().item() - want) < 5 * standard_error  # 5 standard errors


def test_exact_score_minimises_dsm_loss_on_gaussian_data():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 20_000, 2
    sde = VESDE(sigma)
    mu = torch.tensor([0.3, -0.7], dtype=torch.float64)
    x0 = mu + s * torch.randn(n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = gaussian_score(mu, s, sde)
    shift = torch.tensor([0.2, -0.1], dtype=torch.float64)
    candidates = {
        "shifted": lambda x, t: exact(x, t) + shift,
        "scaled": lambda x, t: 1.1 * exact(x, t),
        "wrong variance": gaussian_score(mu, 0.8 * s, sde),
        "wrong mean": gaussian_score(mu + 0.3, s, sde),
    }

    def loss(fn):  # common random numbers: every candidate sees the same t and x_1
        return dsm_loss(fn, x0, sde, eps, torch.Generator().manual_seed(2), reduction="none")

    base = loss(exact)
    for name, fn in candidates.items():
        diff = loss(fn) - base
        assert diff.mean() > 5 * diff.std() / math.sqrt(n), name  # worse by more than 5 standard errors
    # For a constant shift c the excess is exactly 1/2 E[lambda_t] |c|^2 / D in expectation (the cross
    # term has mean zero): E[sigma_t^2] over U(eps, 1) by quadrature.
    mean_lambda = quad(lambda t: sigma_t_numpy(sigma, t) ** 2, eps, 1.0)[0] / (1 - eps)
    diff = loss(candidates["shifted"]) - base
    want = 0.5 * mean_lambda * (shift**2).mean().item()
    assert abs(diff.mean().item() - want) < 5 * diff.std().item() / math.sqrt(n)


def test_validation_loss_is_deterministic_and_matches_closed_form():
    sigma, s, eps, n, d = 25.0, 0.6, 1e-5, 4000, 2
    sde = VESDE(sigma)
    mu = torch.zeros(d, dtype=torch.float64)
    x0 = s * torch.randn(n, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = gaussian_score(mu, s, sde)
    a = validation_loss(exact, sde, x0, steps=50, eps=eps, generator=torch.Generator().manual_seed(4))
    b = validation_loss(exact, sde, x0, steps=50, eps=eps, generator=torch.Generator().manual_seed(4))
    assert a == b
    # midpoint rule with 50 cells vs the integral: the integrand is smooth, and the Monte Carlo
    # error of 50 x 4000 x 2 draws of a quantity with relative spread ~1 is about 0.2 %; allow 3 %
    assert a == pytest.approx(expected_loss_of_exact_score(sigma, s, eps), rel=0.03)


def test_log_prob_proxy_is_the_original_summed_noise_loss():
    # The original: for t in linspace(EPS, 1, T): x_pred = -sigma_t snet(...) = sigma_t s_theta,
    # proxy += 1/2 lambda_t mean((x_pred + x_1)^2) with lambda_t = sigma_t^2. Recompute it by hand.
    sigma, eps, steps = 1.01, 1e-5, 20
    sde = VESDE(sigma)
    x0 = load_digits("val")[:16].double()
    score_fn = lambda x, t: -x  # noqa: E731
    got = log_prob_proxy(score_fn, sde, x0, steps, eps, torch.Generator().manual_seed(5), reduction="none")
    g = torch.Generator().manual_seed(5)
    want = np.zeros(16)
    for t in np.linspace(eps, 1.0, steps):
        x1 = torch.randn(x0.shape, generator=g, dtype=torch.float64).numpy()
        st = sigma_t_numpy(sigma, t)
        x_pred = st * -(x0.numpy() + st * x1)
        want += 0.5 * st**2 * np.mean((x_pred + x1) ** 2, axis=1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert log_prob_proxy(score_fn, sde, x0, steps, eps, torch.Generator().manual_seed(5)).item() == pytest.approx(
        want.mean()
    )


def test_loss_bad_arguments_raise():
    sde = VESDE(25.0)
    fn = lambda x, t: -x  # noqa: E731
    with pytest.raises(ValueError, match="x0 must have 2"):
        dsm_loss(fn, torch.zeros(4), sde)
    with pytest.raises(ValueError, match="eps"):
        dsm_loss(fn, torch.zeros(4, 2), sde, eps=0.0)
    with pytest.raises(TypeError, match="sde must be"):
        dsm_loss(fn, torch.zeros(4, 2), 25.0)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(fn, torch.zeros(4, 2), sde, reduction="sum")
    with pytest.raises(ValueError, match="steps"):
        log_prob_proxy(fn, sde, torch.zeros(4, 2), steps=1)


# ---------------------------------------------------------------------------- training


def _tiny_setup():
    sde = VESDE(25.0)
    x_train, x_val = load_digits("train")[:256], load_digits("val")[:64]
    torch.manual_seed(0)
    net = ScoreNet(sde, hidden=32, depth=2, data_std=0.5, data_mean=x_train.mean(0))
    return net, sde, x_train, x_val


def test_short_training_run_lowers_validation_loss():
    net, sde, x_train, x_val = _tiny_setup()
    before = validation_loss(net, sde, x_val, generator=torch.Generator().manual_seed(1))
    history = train(net, sde, x_train, x_val, epochs=6, batch_size=32, lr=1e-2, ema_decay=None, progress=False)
    # train() validates with seed + 1 = 1: the same noise as `before`. The initial ScoreNet is already
    # close to the Gaussian score (loss ~0.11), so 48 steps of a tiny net gain a few per cent.
    assert history["val_loss"][0] < before
    assert history["best_val_loss"] < 0.97 * before
    after = validation_loss(net, sde, x_val, generator=torch.Generator().manual_seed(1))
    assert after == pytest.approx(history["best_val_loss"], rel=1e-5)  # the model holds the best weights
    assert len(history["train_loss"]) == len(history["epoch"]) == 6 and history["steps"] == 6 * 8
    assert not net.training


def test_training_is_reproducible_and_stops_early():
    results = []
    for _ in range(2):
        net, sde, x_train, x_val = _tiny_setup()
        h = train(net, sde, x_train[:64], x_val, epochs=3, batch_size=64, ema_decay=0.9, progress=False)
        results.append(h["val_loss_ema"])
    assert results[0] == results[1]
    net, sde, x_train, x_val = _tiny_setup()
    h = train(net, sde, x_train[:64], x_val, epochs=50, batch_size=64, lr=1e-9, patience=2, progress=False)
    assert h["stopped"] == "patience" and len(h["epoch"]) <= 50
    net, sde, x_train, x_val = _tiny_setup()
    h = train(net, sde, x_train[:64], x_val, epochs=7, batch_size=64, val_every=3, patience=10, progress=False)
    assert h["val_epoch"] == [2, 5, 6] and len(h["val_loss"]) == len(h["val_epoch"])
    assert len(h["train_loss"]) == len(h["epoch"]) and h["best_epoch"] in h["val_epoch"]


def test_ema_update_rule():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # warm-up: decay min(0.99, 1/10) = 0.1 at the first update
    torch.testing.assert_close(ema.shadow.weight, torch.full((1, 2), 0.1 * 1.0 + 0.9 * 3.0))
    for _ in range(2000):
        ema.update(model)
    torch.testing.assert_close(ema.shadow.weight, torch.full((1, 2), 3.0))
    with pytest.raises(ValueError, match="ema_decay"):
        EMA(model, decay=1.0)


def test_train_bad_arguments_raise():
    net, sde, x_train, x_val = _tiny_setup()
    with pytest.raises(ValueError, match="batch_size"):
        train(net, sde, x_train, x_val, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="train_data must have shape"):
        train(net, sde, torch.zeros(10, 8), x_val, progress=False)
    with pytest.raises(ValueError, match="val_data must have shape"):
        train(net, sde, x_train, torch.zeros(10, 8), progress=False)
    with pytest.raises(ValueError, match="train_data must have 2"):
        train(net, sde, torch.zeros(10), x_val, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(net, sde, x_train, x_val, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(net, sde, x_train, x_val, epochs=0, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        train(net, sde, x_train, x_val, optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="lr_schedule"):
        train(net, sde, x_train, x_val, lr_schedule="step", progress=False)
    with pytest.raises(ValueError, match="val_every"):
        train(net, sde, x_train, x_val, val_every=0, progress=False)


# ---------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("kind", ["ScoreNet", "OriginalScoreNet"])
def test_checkpoint_round_trip(tmp_path, kind):
    net, sde, x_train, _ = _tiny_setup()
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
    net, sde, _, _ = _tiny_setup()
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
