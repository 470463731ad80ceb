"""Tests of class guidance and inpainting (sbgm_edu.guidance, nets.ConditionalScoreNet) against exact answers.

Independent answers: autograd of log-densities written out here (a labelled Gaussian mixture,
whose conditional and marginal scores are known at every t), scipy's Gaussian densities, and the
closed-form conditional of a correlated 2-D Gaussian (Schur complement, written out here).
"""

import math

import pytest
import torch
from scipy.stats import multivariate_normal

from sbgm_edu.data import load_digit_labels, load_digits, toy_mixture_params
from sbgm_edu.guidance import (
    LabelledMixture,
    clamped_langevin_step,
    classifier_guided_score,
    diffused_gaussian_score,
    digit_classifier,
    gaussian_conditional,
    guided_score,
    inpaint,
    inpaint_replacement,
    langevin_step_size,
    predict_digits,
    share_classified_as,
)
from sbgm_edu.nets import ConditionalScoreNet
from sbgm_edu.sde import VESDE

SDE = VESDE(25.0)


def _points(n=7, d=2, seed=0, scale=2.0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mixture():
    params = {k: v.double() for k, v in toy_mixture_params().items()}
    return LabelledMixture(SDE, **params), params


def _log_densities(x, t, params):
    """ln p_t(x | c) for every c, shape (N, K), and ln p_t(x), shape (N,), written from the definitions."""
    var = params["stds"] ** 2 + SDE.marginal_std(t).double() ** 2  # VE: m_t = 1
    d = x.shape[1]
    log_cond = -0.5 * d * torch.log(2 * math.pi * var) - 0.5 * ((x[:, None] - params["means"]) ** 2).sum(-1) / var
    return log_cond, torch.logsumexp(log_cond + torch.log(params["weights"]), dim=1)


def _grad(f, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g


# ---------------------------------------------------------------------------
# classifier-free guidance against exact scores
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.05, 0.3, 0.8])
@pytest.mark.parametrize("w", [0.0, 0.5, 2.0, 4.0])
def test_guided_score_is_the_weighted_exact_scores(t, w):
    model, params = _mixture()
    x = _points()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    cond = _grad(lambda y: _log_densities(y, t, params)[0].gather(1, labels[:, None]), x)
    marg = _grad(lambda y: _log_densities(y, t, params)[1], x)
    expected = (1 + w) * cond - w * marg
    torch.testing.assert_close(guided_score(model, labels, w)(x, t), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_guidance_is_classifier_guidance_with_scale_one_plus_w(w):
    # (1 + w) s(x|c) - w s(x) = grad ln [p_t(x) p_t(c|x)^(1+w)] (Bayes' rule): two independent routes
    model, params = _mixture()
    x, t, c = _points(seed=1), 0.4, 2

    def log_tilted(y):
        log_cond, log_marg = _log_densities(y, t, params)
        log_post = log_cond[:, c] + math.log(params["weights"][c]) - log_marg
        return log_marg + (1 + w) * log_post

    torch.testing.assert_close(guided_score(model, c, w)(x, t), _grad(log_tilted, x), rtol=1e-9, atol=1e-10)
    classifier = classifier_guided_score(model.unconditional, model.log_classifier, c, 1 + w)
    torch.testing.assert_close(classifier(x, t), _grad(log_tilted, x), rtol=1e-9, atol=1e-10)


def test_exact_classifier_is_bayes_rule_with_scipy_densities():
    model, params = _mixture()
    x, t = _points(n=5, seed=2), 0.2
    var = params["stds"] ** 2 + float(SDE.marginal_std(t)) ** 2
    joint = torch.tensor([[params["weights"][k].item()
                           * multivariate_normal(params["means"][k].numpy(), var[k].item()).pdf(xi.numpy())
                           for k in range(3)] for xi in x], dtype=torch.float64)
    torch.testing.assert_close(model.log_classifier(x, t).exp(), joint / joint.sum(1, keepdim=True))


def test_guided_score_on_the_network_sends_each_label_to_its_row_and_refuses_the_null_label():
    # the formula itself is checked against exact scores above; here: a batch of mixed labels gives,
    # row by row, what one label at a time gives, and "no label" cannot be requested as a class
    torch.manual_seed(0)
    net = ConditionalScoreNet(SDE, hidden=32, depth=2)
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([3, 1, 4, 1])
    batch = guided_score(net, labels, 2.0)(x, 0.3)
    for i, c in enumerate(labels.tolist()):
        torch.testing.assert_close(batch[i : i + 1], guided_score(net, c, 2.0)(x[i : i + 1], 0.3))
    assert not torch.allclose(batch, guided_score(net, labels, 0.0)(x, 0.3))  # w changes the score
    with pytest.raises(ValueError, match="labels"):
        guided_score(net, net.null_label, 1.0)


@pytest.mark.parametrize("w", [-0.1, float("nan"), float("inf"), True, "2"])
def test_bad_guidance_weight_is_rejected(w):
    model, _ = _mixture()
    with pytest.raises(ValueError, match="w must be"):
        guided_score(model, 0, w)


@pytest.mark.parametrize("labels, error", [
    (3, ValueError), (-1, ValueError), (torch.tensor([0, 5]), ValueError), (1.0, TypeError),
    (torch.tensor([0.0, 1.0]), TypeError), (True, TypeError), (torch.tensor([[0, 1]]), ValueError),
])
def test_bad_labels_are_rejected(labels, error):
    model, _ = _mixture()  # three classes: labels 0, 1, 2
    with pytest.raises(error, match="labels"):
        guided_score(model, labels, 1.0)


def test_labels_must_match_the_batch():
    model, _ = _mixture()
    score = guided_score(model, torch.tensor([0, 1, 2]), 1.0)
    with pytest.raises(ValueError, match="rows"):
        score(_points(n=4), 0.5)


# ---------------------------------------------------------------------------
# ConditionalScoreNet
# ---------------------------------------------------------------------------


def _net(seed=0):
    torch.manual_seed(seed)
    return ConditionalScoreNet(SDE, hidden=32, depth=2, num_classes=10, label_features=4)


def test_conditional_net_shapes_null_label_and_label_dependence():
    net = _net()
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    assert net.null_label == 10
    torch.testing.assert_close(net(x, 0.5), net(x, 0.5, torch.full((3,), 10)))
    out = net(x, 0.5, torch.tensor([0, 1, 2]))
    assert out.shape == (3, 64)
    assert not torch.allclose(out[0], net(x, 0.5, torch.tensor([9, 1, 2]))[0])
    torch.testing.assert_close(out[1:], net(x, 0.5, torch.tensor([9, 1, 2]))[1:])  # rows are independent


def test_conditional_net_with_zero_correction_is_the_exact_gaussian_score():
    net = _net()
    with torch.no_grad():
        net.mlp[-1].weight.zero_()
        net.mlp[-1].bias.zero_()
    x, t = torch.randn(4, 64), 0.3
    expected = -(x - net.data_mean) / (net.data_std**2 + SDE.marginal_std(t) ** 2)
    torch.testing.assert_close(net(x, t, torch.tensor([1, 2, 3, 4])), expected)


def test_conditional_net_rebuilds_from_its_settings():
    net = _net()
    twin = ConditionalScoreNet(SDE, **net.settings())
    twin.load_state_dict(net.state_dict())
    x, labels = torch.randn(2, 64), torch.tensor([7, 10])
    torch.testing.assert_close(twin(x, 0.2, labels), net(x, 0.2, labels))


@pytest.mark.parametrize("labels, error", [
    (torch.tensor([0, 11]), ValueError), (torch.tensor([-1, 0]), ValueError), (torch.tensor([0]), ValueError),
    (torch.tensor([0.0, 1.0]), TypeError), ([0, 1], TypeError),
])
def test_conditional_net_rejects_bad_labels(labels, error):
    with pytest.raises(error, match="labels"):
        _net()(torch.randn(2, 64), 0.5, labels)


# ---------------------------------------------------------------------------
# inpainting a correlated 2-D Gaussian
# ---------------------------------------------------------------------------

MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
RHO, S1, S2 = 0.9, 1.0, 0.8
COV = torch.tensor([[S1 * S1, RHO * S1 * S2], [RHO * S1 * S2, S2 * S2]], dtype=torch.float64)
MASK = torch.tensor([True, False])  # x_1 known, x_2 missing
KNOWN_VALUE = 1.5
N_MC = 4000


def _exact_conditional():
    """x_2 | x_1 = a ~ N(mu_2 + rho s2/s1 (a - mu_1), s2^2 (1 - rho^2)), written out."""
    return MEAN[1] + RHO * S2 / S1 * (KNOWN_VALUE - MEAN[0]), S2 * math.sqrt(1 - RHO**2)


def _known():
    return torch.tensor([KNOWN_VALUE, 0.0], dtype=torch.float64).expand(N_MC, 2).clone()


def test_langevin_step_size_by_hand():
    noise = torch.tensor([[3.0, 0.0], [0.0, 5.0]])  # row norms 3 and 5: mean 4
    score = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # row norms 1 and 3: mean 2
    assert langevin_step_size(score, noise, 0.5).item() == pytest.approx(2 * (0.5 * 4 / 2) ** 2)


def test_clamped_langevin_settles_at_its_predicted_biased_variance():
    # target x^(2) ~ N(mu, tau^2), x^(1) known. A fixed step delta has the stationary variance
    # V = tau^2 / (1 - delta / (2 tau^2)) (the AR(1) recursion x <- (1 - delta/tau^2) x + sqrt(2 delta) eps);
    # the step rule settles at delta = 2 r^2 tau^4 / V; together V = tau^2 (1 + r^2). At r = 0.5 that is
    # 25 % above tau^2 and 6 % below tau^2 / (1 - r^2); the tolerance is 4 standard errors, sqrt(2 / n) V each.
    tau, mu, r, n = 0.7, 0.4, 0.5, 20000
    gen = torch.Generator().manual_seed(0)
    centre = torch.tensor([0.0, mu], dtype=torch.float64)
    scale = torch.tensor([1.0, tau**2], dtype=torch.float64)

    def score(x, t):
        return -(x - centre) / scale

    x = torch.stack([torch.full((n,), 1.5, dtype=torch.float64),
                     mu + tau * torch.randn(n, generator=gen, dtype=torch.float64)], dim=1)
    for _ in range(200):
        x = clamped_langevin_step(score, x, 0.01, MASK.expand(n, 2), r, gen)
    assert torch.all(x[:, 0] == 1.5)  # the known coordinate is never moved
    predicted = tau**2 * (1 + r**2)
    assert abs(x[:, 1].var().item() - predicted) < 4 * math.sqrt(2 / n) * predicted
    assert abs(x[:, 1].mean().item() - mu) < 4 * math.sqrt(predicted / n)


def test_gaussian_conditional_rejects_bad_masks():
    given = torch.tensor([KNOWN_VALUE, 0.0], dtype=torch.float64)
    for mask in [torch.tensor([True, True]), torch.tensor([False, False]), torch.tensor([1, 0]),
                 torch.tensor([True, False, True])]:
        with pytest.raises(ValueError, match="mask"):
            gaussian_conditional(MEAN, COV, mask, given)
    with pytest.raises(ValueError, match="cov"):
        gaussian_conditional(MEAN, COV[:1], MASK, given)


def test_gaussian_conditional_formula():
    mean_u, cov_u = gaussian_conditional(MEAN, COV, MASK, torch.tensor([KNOWN_VALUE, 0.0], dtype=torch.float64))
    exact_mean, exact_std = _exact_conditional()
    torch.testing.assert_close(mean_u, torch.tensor([exact_mean], dtype=torch.float64))
    torch.testing.assert_close(cov_u.sqrt(), torch.tensor([[exact_std]], dtype=torch.float64))


def test_inpaint_matches_the_exact_gaussian_conditional():
    # Monte Carlo tolerance: 4 standard errors of N_MC = 4000 draws (SE of the mean s/sqrt(N), of the
    # std about s/sqrt(2N)), plus 0.005 for the step-size bias of Langevin dynamics
    # (std s sqrt(1 + r^2), see the test above: 1.3 % of s = 0.0045 at r = 0.16).
    score = diffused_gaussian_score(SDE, MEAN, COV)
    x = inpaint(score, SDE, _known(), MASK, 100, generator=torch.Generator().manual_seed(0), final_steps=200)
    exact_mean, exact_std = _exact_conditional()
    assert torch.equal(x[:, 0], _known()[:, 0])  # the known pixel is never changed
    assert abs(x[:, 1].mean().item() - exact_mean) < 4 * exact_std / math.sqrt(N_MC) + 0.005
    assert abs(x[:, 1].std().item() - exact_std) < 4 * exact_std / math.sqrt(2 * N_MC) + 0.005


def test_replacement_inpainting_is_biased_on_the_same_problem():
    # the naive method misses the conditional mean by far more than the Monte Carlo error
    score = diffused_gaussian_score(SDE, MEAN, COV)
    x = inpaint_replacement(score, SDE, _known(), MASK, 100, generator=torch.Generator().manual_seed(0))
    exact_mean, exact_std = _exact_conditional()
    assert torch.equal(x[:, 0], _known()[:, 0])
    assert abs(x[:, 1].mean().item() - exact_mean) > 10 * exact_std / math.sqrt(N_MC)


@pytest.mark.parametrize("method", [inpaint, inpaint_replacement])
def test_inpainting_rejects_bad_masks(method):
    score = diffused_gaussian_score(SDE, MEAN, COV)
    known = _known()[:5]
    with pytest.raises(ValueError, match="mask"):
        method(score, SDE, known, torch.tensor([True, False, True]), 5)
    with pytest.raises(ValueError, match="mask"):
        method(score, SDE, known, torch.ones(4, 2, dtype=torch.bool), 5)
    with pytest.raises(TypeError, match="mask"):
        method(score, SDE, known, torch.tensor([1.0, 0.0]), 5)
    with pytest.raises(ValueError, match="known"):
        method(score, SDE, known[0], MASK, 5)
    with pytest.raises(ValueError, match="steps"):
        method(score, SDE, known, MASK, 0)


def test_inpaint_rejects_bad_langevin_settings():
    score = diffused_gaussian_score(SDE, MEAN, COV)
    with pytest.raises(ValueError, match="snr"):
        inpaint(score, SDE, _known()[:5], MASK, 5, snr=0.0)
    with pytest.raises(ValueError, match="final_steps"):
        inpaint(score, SDE, _known()[:5], MASK, 5, final_steps=-1)


# ---------------------------------------------------------------------------
# the judge
# ---------------------------------------------------------------------------


def test_digit_classifier_is_accurate_on_real_test_digits():
    classifier = digit_classifier()
    x, y = load_digits("test"), load_digit_labels("test")
    assert share_classified_as(classifier, x, y) > 0.9
    # scikit-learn's own accuracy, an independent count (the test digits already lie in [-1, 1])
    assert share_classified_as(classifier, x, y) == pytest.approx(classifier.score(x.numpy(), y.numpy()))
    with pytest.raises(ValueError, match="64"):
        predict_digits(classifier, torch.zeros(3, 63))
    with pytest.raises(ValueError, match="labels"):
        share_classified_as(classifier, x[:2], 10)


# ---------------------------------------------------------------------------
# the shipped conditional model
# ---------------------------------------------------------------------------


def test_shipped_conditional_model_follows_the_requested_digit_at_w_2():
    # the chapter's claim, on fewer samples: >= 90 % of guided samples at w = 2 are classified as requested
    from sbgm_edu.sampling import sample
    from sbgm_edu.train import load_pretrained

    model, sde = load_pretrained("conditional")
    assert isinstance(model, ConditionalScoreNet) and model.null_label == 10
    labels = torch.arange(10).repeat_interleave(10)
    x = sample(guided_score(model, labels, 2.0), sde, 100, 64, 50, generator=torch.Generator().manual_seed(0))
    assert share_classified_as(digit_classifier(), x, labels) >= 0.9
