"""Tests of sbgm_edu.original: the original notebook's loss, reproduced exactly, and its recipe."""

import pytest
import torch

from sbgm_edu.original import NOTEBOOK_SETTINGS, OriginalScoreNet, original_loss
from sbgm_edu.sde import VESDE


def transcribed_original_forward(net: OriginalScoreNet, sigma: float, x_0, x_1, t):
    """SBGM.forward of the original notebook, line by line, with its draws x_1 and t (shape (N, 1)) given."""
    sig = torch.tensor([sigma], dtype=x_0.dtype)
    sigma_fun = lambda t: torch.sqrt((1.0 / (2.0 * torch.log(sig))) * (sig ** (2.0 * t) - 1.0))  # noqa: E731
    x_t = x_0 + sigma_fun(t) * x_1
    t_embd = net.time_embedding(t)
    x_pred = -sigma_fun(t) * net.snet(x_t + t_embd)
    SM_loss = 0.5 * sigma_fun(t) ** 2 * torch.pow(x_pred + x_1, 2).mean(-1)  # noqa: N806 (the original's name)
    assert SM_loss.shape == (x_0.shape[0], x_0.shape[0])  # the (N, 1) x (N,) broadcast
    return SM_loss.mean()


def draws(n=7, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = 2 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1
    t = 1e-5 + (1 - 1e-5) * torch.rand(n, generator=g, dtype=torch.float64)
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x0, t, noise


@pytest.mark.parametrize("sigma", [1.01, 25.0])
def test_original_loss_is_the_original_line_including_its_broadcast(sigma):
    torch.manual_seed(0)
    net = OriginalScoreNet(hidden=32).double()
    x0, t, noise = draws()
    got = original_loss(net, x0, VESDE(sigma), t, noise)
    want = transcribed_original_forward(net, sigma, x0, noise, t[:, None])
    assert got.shape == ()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


def test_original_loss_is_half_mean_weight_times_mean_noise_space_error():
    # The (N, N) mean factorises: 1/2 mean_i sigma_{t_i}^2 * mean_j e_j, e_j the noise-space error of example j;
    # it is NOT the per-example weighted mean 1/2 mean_j sigma_{t_j}^2 e_j of the post's formula.
    torch.manual_seed(1)
    net = OriginalScoreNet(hidden=16).double()
    x0, t, noise = draws(n=9, seed=3)
    sde = VESDE(1.01)
    s2 = sde.marginal_std(t) ** 2
    with torch.no_grad():
        e = ((s2.sqrt()[:, None] * net(x0 + s2.sqrt()[:, None] * noise, t) + noise) ** 2).mean(1)
        got = original_loss(net, x0, sde, t, noise)
    assert got.item() == pytest.approx(0.5 * s2.mean().item() * e.mean().item(), rel=1e-12)
    assert abs(got.item() - 0.5 * (s2 * e).mean().item()) > 1e-3 * got.item()


def test_original_loss_rejects_mismatched_shapes():
    net, sde = OriginalScoreNet(hidden=4), VESDE(1.01)
    x0, t, noise = (v.float() for v in draws(n=3))
    with pytest.raises(ValueError, match="t shape"):
        original_loss(net, x0, sde, t[:, None], noise)
    with pytest.raises(ValueError, match="noise"):
        original_loss(net, x0, sde, t, noise[:2])
    with pytest.raises(ValueError, match="t must be > 0"):
        original_loss(net, x0, sde, torch.zeros(3), noise)


def test_notebook_settings_are_the_hyperparameter_cell():
    # the original's cell: D = 64, M = 512, T = 20, sigma = 1.01, lr = 1e-3, num_epochs = 1000, max_patience = 50;
    # DataLoader batch_size=32, torch.optim.Adamax
    want = {"hidden": 512, "sigma": 1.01, "lr": 1e-3, "epochs": 1000, "patience": 50, "batch_size": 32,
            "optimizer": "adamax", "data_map": "2x/17-1"}
    assert {k: NOTEBOOK_SETTINGS[k] for k in want} == want
