"""Tests of sbgm_edu.train: training runs, early stopping, EMA and the hooks of train()."""

import math

import pytest
import torch
from dsm_oracles import tiny_setup

from sbgm_edu.losses import validation_loss
from sbgm_edu.sde import VESDE
from sbgm_edu.train import EMA, train


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks train faster on one thread (and the timings of a busy machine vary less)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_short_training_run_lowers_validation_loss():
    net, sde, x_train, x_val = tiny_setup()
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
        net, sde, x_train, x_val = tiny_setup()
        h = train(net, sde, x_train[:64], x_val, epochs=3, batch_size=64, ema_decay=0.9, progress=False)
        results.append(h["val_loss_ema"])
    assert results[0] == results[1]
    net, sde, x_train, x_val = tiny_setup()
    h = train(net, sde, x_train[:64], x_val, epochs=50, batch_size=64, lr=1e-9, patience=2, progress=False)
    # stopped by patience: the last epoch is exactly `patience` epochs after the best one
    assert h["stopped"] == "patience" and h["epoch"][-1] == h["best_epoch"] + 2 < 49
    net, sde, x_train, x_val = tiny_setup()
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
    net, sde, x_train, x_val = tiny_setup()
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




def test_never_finite_validation_loss_says_so_and_keeps_the_history():
    # Before the fix: after all epochs, an unrelated TypeError about state_dict, and the history was lost.
    from sbgm_edu.train import TrainingDiverged

    net, sde, x_train, x_val = tiny_setup()
    with pytest.raises(TrainingDiverged, match="without a finite validation loss") as info:
        train(net, sde, x_train[:64], x_val, epochs=5, batch_size=32, lr=1e8, progress=False)
    history = info.value.history
    assert history["stopped"] == "nonfinite_loss" and history["best_epoch"] == -1
    assert len(history["train_loss"]) == len(history["epoch"]) >= 1
    assert not math.isfinite(history["train_loss"][-1]) and not math.isfinite(history["val_loss"][-1])


class RecordingConditionalNet(torch.nn.Module):
    """A conditional 'network' s(x, t, labels) = a * x that records the labels it is called with."""

    null_label = 10

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.a = torch.nn.Parameter(torch.tensor(-1.0))
        self.calls: list = []

    def forward(self, x, t, labels=None):
        self.calls.append((x.detach().clone(), None if labels is None else labels.clone(), self.training))
        return self.a * x


def fixed_small_time(n, generator):
    """A time_sampler that always returns t = 1e-5 (weight 1): x_t is x_0 up to sigma_t ~ 3e-3."""
    return torch.full((n,), 1e-5), torch.ones(n)


def test_labels_follow_their_rows_and_are_dropped_at_the_requested_rate():
    # Row i of the data is the constant label_i / 10 (plus noise of size ~3e-3 at t = 1e-5), so the label a
    # training call receives can be checked against its x_t; dropped labels are the net's null label 10.
    sde, n, p = VESDE(2.0), 400, 0.3
    labels = torch.arange(n) % 10
    x = (labels.float() / 10.0)[:, None].repeat(1, 4)
    net = RecordingConditionalNet(4)
    train(net, sde, x, x[:20], epochs=2, batch_size=50, ema_decay=None, labels=labels, label_dropout=p,
          time_sampler=fixed_small_time, progress=False)
    training_calls = [(xt, lab) for xt, lab, is_training in net.calls if is_training]
    assert len(training_calls) == 2 * n // 50
    seen = torch.cat([lab for _, lab in training_calls])
    from_x = torch.cat([(xt.mean(1) * 10).round().long() for xt, _ in training_calls])
    kept = seen != 10
    assert torch.equal(seen[kept], from_x[kept])  # each kept label is its own row's label
    dropped = 1.0 - kept.double().mean().item()
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / seen.numel())  # binomial, 4 standard errors
    assert all(lab is None for _, lab, is_training in net.calls if not is_training)  # validation: unconditional


def test_label_arguments_are_checked():
    net, sde, x_train, x_val = tiny_setup()
    labels = torch.zeros(x_train.shape[0], dtype=torch.int64)
    with pytest.raises(ValueError, match="null_label"):
        train(net, sde, x_train, x_val, labels=labels, label_dropout=0.1, progress=False)
    with pytest.raises(ValueError, match="labels must have shape"):
        train(net, sde, x_train, x_val, labels=labels[:5], progress=False)
    with pytest.raises(TypeError, match="labels must be an int64"):
        train(net, sde, x_train, x_val, labels=labels.float(), progress=False)
    with pytest.raises(ValueError, match="label_dropout must be a float in"):
        train(net, sde, x_train, x_val, labels=labels, label_dropout=1.5, progress=False)
    with pytest.raises(ValueError, match="need labels"):
        train(net, sde, x_train, x_val, label_dropout=0.5, progress=False)


def test_loss_hook_gets_the_documented_draws_and_is_what_is_minimised():
    # The hook replaces the DSM loss. With loss = (a - 3)^2 and one Adam step of lr 0.1 from a = -1, Adam's
    # first step has size lr in the direction of -grad (its moment estimates cancel): a = -0.9.
    seen = []

    def loss(model, x0, sde, t, noise):
        seen.append((t.shape, noise.shape, float(t.min()), float(t.max())))
        return (model.a - 3.0) ** 2 + 0.0 * (t.sum() + noise.sum())

    net, sde = RecordingConditionalNet(4), VESDE(2.0)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    train(net, sde, x, x[:8], epochs=1, batch_size=64, lr=0.1, ema_decay=None, loss=loss, progress=False)
    assert seen == [((64,), (64, 4), seen[0][2], seen[0][3])] and 1e-5 <= seen[0][2] < seen[0][3] <= 1.0
    assert net.a.item() == pytest.approx(-0.9, abs=1e-6)
    with pytest.raises(ValueError, match="cannot be combined"):
        train(net, sde, x, x[:8], loss=loss, time_sampler=fixed_small_time, progress=False)
