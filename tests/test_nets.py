"""Tests of sbgm_edu.nets: shapes, the original architecture, and ScoreNet's Gaussian limit."""

import math

import pytest
import torch

from sbgm_edu.nets import OriginalScoreNet, ScoreNet
from sbgm_edu.sde import VESDE


def _batch(n=5, d=64, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _small_scorenet(sde, seed=0, **kwargs):
    torch.manual_seed(seed)
    return ScoreNet(sde, dim=64, hidden=32, depth=2, **kwargs)


@pytest.mark.parametrize("make", [lambda: OriginalScoreNet(hidden=32), lambda: _small_scorenet(VESDE(25.0))])
def test_output_shape_for_float_and_tensor_time(make):
    net = make()
    x = _batch()
    out_float = net(x, 0.3)
    out_tensor = net(x, torch.full((5,), 0.3))
    assert out_float.shape == out_tensor.shape == (5, 64)
    torch.testing.assert_close(out_float, out_tensor)
    out_mixed = net(x, torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]))
    torch.testing.assert_close(out_mixed[1], out_float[1])  # row i only depends on t_i
    assert not torch.allclose(out_mixed[0], net(x, 0.1 + 0.5)[0])


def test_original_architecture_sizes():
    net = OriginalScoreNet()  # D = 64, M = 512 as in the original notebook
    linear_shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [(64, 1), (512, 64), (512, 512), (512, 512), (64, 512)]  # (out, in)
    n_params = (1 * 64 + 64) + (64 * 512 + 512) + 2 * (512 * 512 + 512) + (512 * 64 + 64)
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert isinstance(net.snet[-1], torch.nn.Hardtanh)
    assert all(isinstance(net.snet[i], torch.nn.SiLU) for i in (1, 3, 5))


def test_original_output_is_clamped_to_three():
    torch.manual_seed(0)
    net = OriginalScoreNet(hidden=32)
    with torch.no_grad():
        net.snet[-2].bias.fill_(10.0)  # push every pre-activation far beyond the clamp
    out = net(_batch(), 0.01)
    torch.testing.assert_close(out, torch.full_like(out, -3.0))  # score = -snet, snet clamped at +3


def test_original_time_is_only_a_shift_of_the_input():
    # The original feeds x + tanh(W t + b): the pair (x + e(t) - e(t'), t') looks exactly like (x, t),
    # so the network cannot tell these two different inputs apart.
    torch.manual_seed(1)
    net = OriginalScoreNet(hidden=32)
    x = _batch()
    with torch.no_grad():
        e = lambda t: net.time_embedding(torch.tensor([[t]]))  # noqa: E731
        x_shifted = x + e(0.2) - e(0.9)
        torch.testing.assert_close(net(x, 0.2), net(x_shifted, 0.9))


def test_scorenet_with_zero_correction_is_the_exact_gaussian_score():
    # Data N(mu, s^2 I) diffused by the VE SDE have p_t = N(mu, (s^2 + sigma_t^2) I), whose score
    # is -(x - mu) / (s^2 + sigma_t^2).
    sigma, s = 25.0, 0.6
    sde = VESDE(sigma)
    mu = torch.linspace(-1, 1, 64)
    net = _small_scorenet(sde, data_std=s, data_mean=mu)
    with torch.no_grad():
        net.mlp[-1].weight.zero_()
        net.mlp[-1].bias.zero_()
    x = _batch(seed=2)
    for t in (1e-5, 0.3, 1.0):
        var_t = s**2 + (sigma ** (2 * t) - 1) / (2 * math.log(sigma))
        torch.testing.assert_close(net(x, t), -(x - mu) / var_t, rtol=1e-5, atol=1e-6)


def test_scorenet_output_scale_is_one_over_sigma_at_small_t():
    # at small sigma_t the correction term dominates and -sigma_t s_theta = -F (unit scale)
    sde = VESDE(25.0)
    net = _small_scorenet(sde, data_std=0.5)
    x = _batch(seed=3)
    t = 1e-4
    sigma_t = float(sde.marginal_std(t))
    scaled = -sigma_t * net(x, t)
    assert 0.01 < scaled.abs().mean() < 10.0
    assert net(x, t).abs().mean() > 10 * net(x, 1.0).abs().mean()


def test_bad_inputs_raise():
    sde = VESDE(25.0)
    for net in (OriginalScoreNet(hidden=8), _small_scorenet(sde)):
        with pytest.raises(ValueError, match="x must have shape"):
            net(torch.zeros(3, 10), 0.5)
        with pytest.raises(ValueError, match="x must have 2"):
            net(torch.zeros(3, 8, 8), 0.5)
        with pytest.raises(ValueError, match="t must lie in"):
            net(torch.zeros(3, 64), 1.5)
        with pytest.raises(ValueError, match="t has 2 times"):
            net(torch.zeros(3, 64), torch.tensor([0.1, 0.2]))
        with pytest.raises(TypeError, match="t must be"):
            net(torch.zeros(3, 64), "0.5")
    with pytest.raises(ValueError, match="t must be > 0"):
        _small_scorenet(sde)(torch.zeros(3, 64), 0.0)
    with pytest.raises(TypeError, match="sde must be"):
        ScoreNet(25.0)
    with pytest.raises(ValueError, match="data_std"):
        ScoreNet(sde, data_std=0.0)
    with pytest.raises(ValueError, match="data_mean must have shape"):
        ScoreNet(sde, data_mean=torch.zeros(3))
    with pytest.raises(ValueError, match="hidden"):
        OriginalScoreNet(hidden=0)


def test_scorenet_for_data_fits_mean_and_rms():
    data = torch.randn(50, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float32) * 0.3 + 0.1
    net = ScoreNet.for_data(VESDE(25.0), data, hidden=8, depth=1)
    arr = data.numpy().astype("float64")
    mean = arr.mean(axis=0)
    torch.testing.assert_close(net.data_mean, torch.as_tensor(mean, dtype=torch.float32))
    assert net.data_std == pytest.approx(float(((arr - mean) ** 2).mean() ** 0.5), rel=1e-5)
    assert net.hidden == 8 and net.depth == 1
