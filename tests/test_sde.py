"""VESDE, Euler–Maruyama and the PF-ODE drift against closed forms and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sbgm_edu.ode import heun
from sbgm_edu.scores import diffused_mixture_score
from sbgm_edu.sde import SDE, VESDE, VPSDE, SubVPSDE, euler_maruyama, pf_ode_drift
from tests.oracles import gaussian_flow


def test_marginal_std_matches_the_formula():
    sde = VESDE(25.0)
    for t in (0.0, 0.1, 0.5, 1.0):
        want = math.sqrt((25.0 ** (2 * t) - 1) / (2 * math.log(25.0)))
        assert sde.marginal_std(t).item() == pytest.approx(want, rel=1e-12)
    assert sde.prior_std() == pytest.approx(9.8452, abs=1e-4)  # DESIGN.md: sigma_1 ~ 9.8 for sigma = 25


@pytest.mark.parametrize("sigma", [1.0 + 1e-12, 1.0 + 1e-8, 1.0 + 1e-4])
def test_sigma_near_one_tends_to_brownian_motion(sigma):
    # Taylor series in a = 2 ln(sigma): sigma_t^2 = expm1(a t)/a = t + a t^2/2 + a^2 t^3/6 + O(a^3).
    # Its limit is t; the naive formula would lose all digits to cancellation at sigma = 1 + 1e-12.
    sde = VESDE(sigma)
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    a = 2 * math.log(sigma)
    want = t + a * t**2 / 2 + a**2 * t**3 / 6
    assert torch.allclose(sde.marginal_std(t) ** 2, want, rtol=1e-9, atol=0)


def test_variance_derivative_equals_squared_diffusion():
    # d(sigma_t^2)/dt = g(t)^2, by central finite differences (error O(h^2) ~ 1e-10 relative).
    sde, h = VESDE(5.0), 1e-5
    for t in (0.05, 0.3, 0.7, 0.95):
        fd = (sde.marginal_std(t + h) ** 2 - sde.marginal_std(t - h) ** 2) / (2 * h)
        assert fd.item() == pytest.approx(sde.diffusion(t).item() ** 2, rel=1e-7)


def test_euler_maruyama_variance_matches_sigma_t_squared():
    # Monte Carlo: 40,000 paths from x0 = 0. The sample variance has relative standard error
    # sqrt(2 / N) = 0.7%; Euler–Maruyama's left-point rule adds a bias of about
    # (sigma_t^2 - Riemann sum) / sigma_t^2, which with 400 steps is < 0.5%. Tolerance: 3.5%.
    sde = VESDE(5.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(40_000, 1, dtype=torch.float64)
    ts = torch.linspace(0.0, 0.8, 401, dtype=torch.float64)
    xt = euler_maruyama(sde.drift, sde.diffusion, x0, ts, generator=gen)
    assert xt.var().item() == pytest.approx(sde.marginal_std(0.8).item() ** 2, rel=0.035)
    assert abs(xt.mean().item()) < 5 * sde.marginal_std(0.8).item() / math.sqrt(40_000)


def test_euler_maruyama_path_shape_and_reverse_grid():
    gen = torch.Generator().manual_seed(1)
    path = euler_maruyama(lambda x, t: -x, lambda t: 0.5, torch.ones(4, 3), [1.0, 0.5, 0.0], gen, return_path=True)
    assert path.shape == (3, 4, 3)
    assert torch.isfinite(path).all()


def test_perturb_and_prior():
    sde = VESDE(2.0)
    x0 = torch.randn(5, 3)
    noise = torch.randn(5, 3)
    t = torch.rand(5)
    want = x0 + sde.marginal_std(t)[:, None].float() * noise
    assert torch.allclose(sde.perturb(x0, t, noise), want)
    x1 = sde.sample_prior(20_000, 2, generator=torch.Generator().manual_seed(0))
    # std of 40,000 normal draws: relative standard error 1/sqrt(2 * 40,000) = 0.35%; tolerance 2%.
    assert x1.std().item() == pytest.approx(sde.prior_std(), rel=0.02)


def test_prior_log_prob_matches_torch_normal():
    sde = VESDE(25.0)
    x = torch.randn(7, 4, dtype=torch.float64) * 3
    want = torch.distributions.Normal(0.0, sde.prior_std()).log_prob(x).sum(dim=1)
    assert torch.allclose(sde.prior_log_prob(x), want)


def test_loss_weight_is_sigma_t_squared():
    sde = VESDE(25.0)
    assert sde.loss_weight(0.3).item() == pytest.approx((25.0**0.6 - 1) / (2 * math.log(25.0)))


def test_pf_ode_flow_of_gaussian_data_matches_the_closed_form():
    # Data N(mu, s^2 I) under VE: the PF-ODE maps x_1 to
    # x_t = mu + (x_1 - mu) sqrt((s^2 + sigma_t^2) / (s^2 + sigma_1^2)).
    sde = VESDE(25.0)
    mu, s = torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.3
    score = diffused_mixture_score(sde, mu, torch.tensor([s], dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    x1 = torch.tensor([[4.0, -7.0], [-10.0, 2.0]], dtype=torch.float64)
    t_end = 1e-3
    got = heun(pf_ode_drift(sde, score), x1, torch.linspace(1.0, t_end, 2001, dtype=torch.float64))
    assert torch.allclose(got, gaussian_flow(sde, mu, s, x1, 1.0, t_end), atol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 0.5, -2.0, float("inf"), float("nan")])
def test_bad_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma must be a finite float > 1"):
        VESDE(sigma)


def test_bad_arguments_raise():
    sde = VESDE(25.0)
    with pytest.raises(TypeError, match="sigma"):
        VESDE("25")
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\]"):
        sde.marginal_std(1.5)
    with pytest.raises(ValueError, match="t must lie"):
        sde.marginal_std(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        sde.sample_prior(0, 2)
    with pytest.raises(TypeError, match="dim"):
        sde.sample_prior(3, 2.0)
    with pytest.raises(ValueError, match="noise must have the shape of x0"):
        sde.perturb(torch.zeros(3, 2), 0.5, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="t has 2 times but x has 3 rows"):
        sde.perturb(torch.zeros(3, 2), torch.tensor([0.1, 0.2]), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="sde must be"):
        pf_ode_drift("VE", lambda x, t: x)
    with pytest.raises(ValueError, match="x0 must be finite"):
        euler_maruyama(sde.drift, sde.diffusion, torch.tensor([[float("inf")]]), [0.0, 1.0])


@pytest.mark.parametrize("cls", [VPSDE, SubVPSDE])
def test_vp_kernels_solve_their_moment_equations(cls):
    # For dx = f dt + g dv with linear f = -beta x / 2, the mean factor and variance obey
    # dm/dt = -beta m / 2 and dv/dt = -beta v + g^2 with m(0) = 1, v(0) = 0. Solve them with scipy.
    sde = cls(0.1, 20.0)

    def moments(t, y):
        beta = sde.beta(float(t)).item()
        g2 = sde.diffusion(float(t)).item() ** 2
        return [-0.5 * beta * y[0], -beta * y[1] + g2]

    ts = [0.01, 0.1, 0.3, 0.6, 1.0]
    sol = solve_ivp(moments, (0.0, 1.0), [1.0, 0.0], t_eval=ts, rtol=1e-11, atol=1e-13)
    t = torch.tensor(ts, dtype=torch.float64)
    assert np.allclose(sde.marginal_mean_coeff(t).numpy(), sol.y[0], rtol=1e-7, atol=1e-12)
    assert np.allclose(sde.marginal_std(t).numpy() ** 2, sol.y[1], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("cls", [VPSDE, SubVPSDE])
def test_vp_kernels_match_euler_maruyama_monte_carlo(cls):
    # 20,000 paths from x0 = 1 to t = 0.5. Standard errors: mean sigma_t / sqrt(N) ~ 0.007,
    # variance sqrt(2 / N) ~ 1% relative; with 500 steps the scheme's bias is well below that.
    # Tolerances: 5 standard errors, plus 1% for the discretisation.
    sde = cls()
    gen = torch.Generator().manual_seed(2)
    n, t_end = 20_000, 0.5
    x0 = torch.ones(n, 1, dtype=torch.float64)
    xt = euler_maruyama(sde.drift, sde.diffusion, x0, torch.linspace(0, t_end, 501, dtype=torch.float64), gen)
    m, s = sde.marginal_mean_coeff(t_end).item(), sde.marginal_std(t_end).item()
    assert xt.mean().item() == pytest.approx(m, abs=5 * s / math.sqrt(n) + 0.01 * m)
    assert xt.var().item() == pytest.approx(s**2, rel=5 * math.sqrt(2 / n) + 0.01)


def test_sub_vp_std_is_below_vp_std_and_priors_are_standard_normal():
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    assert (SubVPSDE().marginal_std(t) < VPSDE().marginal_std(t)).all()
    assert VPSDE().prior_std() == SubVPSDE().prior_std() == 1.0
    assert VPSDE().marginal_mean_coeff(1.0).item() == pytest.approx(math.exp(-0.5 * (0.1 + 19.9 / 2)))


def test_bad_vp_arguments_raise():
    with pytest.raises(ValueError, match="beta_min must be a finite float > 0"):
        VPSDE(beta_min=0.0)
    with pytest.raises(ValueError, match="beta_max must be a finite float >= 5"):
        SubVPSDE(beta_min=5.0, beta_max=1.0)
    with pytest.raises(TypeError, match="beta_max"):
        VPSDE(beta_max="20")


def test_sample_prior_in_float64_draws_float64_normals():
    sde = VESDE(25.0)
    x = sde.sample_prior(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.dtype == torch.float64 and torch.equal(x, sde.prior_std() * z)


# ---------------------------------------------------------------------------
# issue 10: the SDE interface is abstract and complete; a new SDE needs no other change
# ---------------------------------------------------------------------------


def test_vesde_whose_prior_overflows_is_rejected():
    # sigma_1^2 = (sigma^2 - 1) / (2 ln sigma) is inf in float64 for sigma = 1e160
    with pytest.raises(ValueError, match="sigma must be <"):
        VESDE(1e160)
    assert math.isfinite(VESDE(1e150).prior_std())


def test_sde_is_abstract_and_likelihood_weight_is_g_squared():
    from sbgm_edu.sde import SDE

    with pytest.raises(TypeError):
        SDE()
    sde = VPSDE()
    t = torch.tensor([0.1, 0.5], dtype=torch.float64)
    assert torch.allclose(sde.likelihood_weight(t), 0.1 + t * 19.9)  # g^2 = beta(t)


class ConstantDiffusionSDE(SDE):
    """dx = c dv, written here from scratch: f = 0, g = c, m_t = 1, sigma_t = c sqrt(t) = sigma~_t.

    Its prior N(0, (c^2 + s^2) I) is exactly p_1 for data N(0, s^2 I), so that any correct sampler,
    deterministic or stochastic, turns prior draws into draws of p_eps = N(0, (s^2 + c^2 eps) I).
    """

    def __init__(self, c: float = 3.0, s: float = 0.5) -> None:
        self.c, self.s = c, s

    @staticmethod
    def _t(t):
        return t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64)

    def drift(self, x, t):
        return torch.zeros_like(x)

    def diffusion(self, t):
        return self.c * torch.ones_like(self._t(t))

    def marginal_mean_coeff(self, t):
        return torch.ones_like(self._t(t))

    def marginal_std(self, t):
        return self.c * torch.sqrt(self._t(t))

    def prior_std(self):
        return math.sqrt(self.c**2 + self.s**2)

    def time_of_noise_level(self, sigma):
        return (torch.as_tensor(sigma, dtype=torch.float64) / self.c) ** 2


def test_a_new_sde_samples_with_every_solver_computes_a_likelihood_and_trains():
    from sbgm_edu.likelihood import log_prob
    from sbgm_edu.sampling import sample
    from sbgm_edu.solvers import REGISTRY
    from sbgm_edu.train import train
    from tests.oracles import gaussian_pf_ode_log_prob, gaussian_score

    sde = ConstantDiffusionSDE(3.0, 0.5)
    zero, s, eps, n = torch.zeros(1, 2, dtype=torch.float64), 0.5, 1e-3, 2000
    score = gaussian_score(sde, zero, s)
    x1 = sde.prior_std() * torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = gaussian_flow(sde, zero, s, x1, 1.0, eps)
    var = s**2 + 9.0 * eps  # p_eps = N(0, var I)
    for name, spec in REGISTRY.items():
        x = sample(score, sde, n, 2, 200, solver=name, eps=eps, grid="edm",
                   generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        # 5 standard errors of the mean and of the variance (var of a sample variance: 2 var^2 / n)
        assert x.mean(0).abs().max() < 5 * math.sqrt(var / n), name
        assert (x.var(0) - var).abs().max() < 5 * var * math.sqrt(2 / n), name
        if not spec.stochastic:  # a deterministic solver follows the exact flow point by point
            assert (x - exact).abs().max() < 0.05 * s, name  # Euler, first order, is the least accurate
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    score = gaussian_score(sde, mu, s)
    x0 = mu + s * torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = log_prob(score, sde, x0, steps=20, eps=eps)
    assert torch.allclose(got, gaussian_pf_ode_log_prob(sde, mu, s, x0, eps), atol=1e-3)

    class TinyScore(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

        def forward(self, x, t):
            t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
            return self.layer(torch.cat([x, t[:, None]], dim=1))

    torch.manual_seed(0)
    net, data = TinyScore(), (mu + s * torch.randn(64, 2, generator=torch.Generator().manual_seed(2))).float()
    before = [p.detach().clone() for p in net.parameters()]
    history = train(net, sde, data, data[:16], epochs=1, batch_size=64, ema_decay=None, progress=False)
    assert history["steps"] == 1 and math.isfinite(history["train_loss"][0])
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
