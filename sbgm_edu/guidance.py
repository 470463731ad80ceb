"""Controllable generation with a score model: class guidance and inpainting.

Chapter "Controllable generation" (book/ch12_guidance.ipynb).

Class guidance. Bayes' rule p_t(x | c) = p_t(c | x) p_t(x) / p(c) gives, for the scores,

    grad_x ln p_t(x | c) = grad_x ln p_t(x) + grad_x ln p_t(c | x),          eq. (cfg-bayes)

since p(c) does not depend on x. Classifier guidance (Dhariwal & Nichol 2021) adds
gamma times the gradient of a classifier trained on noisy data to an unconditional
score (`classifier_guided_score`); classifier-free guidance (Ho & Salimans 2022)
needs no classifier: one network estimates both s(x, t, c) and s(x, t) = s(x, t, null),
and `guided_score` combines them,

    s_w(x, t, c) = (1 + w) s(x, t, c) - w s(x, t),                           eq. (cfg-score)

which, for exact scores, equals grad ln p_t(x) + (1 + w) grad ln p_t(c | x) by eq. (cfg-bayes):
classifier guidance with gamma = 1 + w and the classifier implied by the two scores. The w
is Ho & Salimans' (w = 0: the conditional model); Imagen (Saharia et al. 2022) calls 1 + w
the guidance weight instead. Guided sampling does NOT draw from
p_0(x) p_0(c | x)^(1 + w) / Z in general: the tilted noisy densities are not diffusions of one
another (the chapter measures the difference on a mixture).

Inpainting. Write x^k for the known pixels (`mask` True) and x^u for the unknown ones; given
the clean known values x_0^k, draw x^u from p_0(x^u | x_0^k). `inpaint_replacement` is the
"replacement" method (Song et al. 2021, Appendix I.2): solve the reverse SDE for all pixels
and overwrite the known ones with a fresh noisy copy m_t x_0^k + sigma_t noise after every step.
The unknown pixels are then steered by the score given that noisy copy, a new independent one
at every step, instead of the score given x_0^k, so the result is not p_0(x^u | x_0^k) in
general, however many steps (the chapter measures the error on a Gaussian, where the answer is
known). `inpaint` never re-noises the known pixels: they stay clamped to their clean values
while Langevin dynamics (with a reverse-SDE predictor, as in the predictor-corrector sampler)
moves the unknown ones. At level t a Langevin step on x^u targets

    q_t(x^u) = p_t(x^u, x_0^k) / Z_t   with   grad_{x^u} ln q_t = [grad_x ln p_t(x^u, x_0^k)]_u,   eq. (inpaint-target)

(the noisy density with x^k held at its clean value); q_{t_min} is p_0(x^u | x_0^k) up to the
tiny noise sigma_{t_min}, and a block of small Langevin steps at t = t_min ends the run. The
method is exact only in a limit (small steps, many of them, t_min -> 0): unadjusted Langevin
dynamics with a finite step has an O(step) bias (no Metropolis correction: a score model gives
no density ratios), and a multimodal conditional needs a chain long enough to move between
modes; otherwise the weights of the modes come from the annealing, which guarantees nothing.

The judge of the chapter is `digit_classifier`, a scikit-learn classifier fitted on the
real training digits only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sbgm_edu._checks import Time, check_eps, check_positive_int, check_score_fn, check_tensor, time_column
from sbgm_edu.sde import SDE, ScoreFn, check_sde

ConditionalModel = Callable[..., torch.Tensor]
"""model(x, t, labels=None) -> (N, D): s(x, t, c) for labels c of shape (N,), s(x, t) for None."""

DEFAULT_SNR = 0.16
"""Signal-to-noise ratio r of the Langevin step size, eq. (inpaint-langevin-step) (Song et al. 2021 use 0.16 for VE)."""


# ---------------------------------------------------------------------------
# class guidance
# ---------------------------------------------------------------------------


def check_guidance_weight(w: float) -> float:
    """Check that the guidance weight w is a finite float >= 0; return it as a float."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w >= 0):
        raise ValueError(f"w must be a finite float >= 0 (0 = no guidance), got {w!r}")
    return float(w)


def check_class_labels(labels: int | torch.Tensor, num_classes: int | None) -> int | torch.Tensor:
    """Check a label (int) or labels (1-D integer tensor) against 0..num_classes - 1 (if num_classes is known)."""
    if isinstance(labels, bool):
        raise TypeError("labels must be an int or a 1-D integer tensor, got a bool")
    if isinstance(labels, int):
        values = torch.tensor([labels])
    elif isinstance(labels, torch.Tensor) and not labels.is_floating_point() and labels.dtype != torch.bool:
        if labels.ndim != 1:
            raise ValueError(f"labels must be a 1-D tensor of shape (N,), got shape {tuple(labels.shape)}")
        values = labels
    else:
        raise TypeError(f"labels must be an int or a 1-D integer tensor, got {type(labels).__name__}")
    high = "num_classes - 1" if num_classes is None else str(num_classes - 1)
    if values.numel() and ((values < 0).any() or (num_classes is not None and (values >= num_classes).any())):
        raise ValueError(f"labels must lie in 0..{high}, got {values.min().item()}..{values.max().item()}")
    return labels


def labels_for_batch(labels: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The label of each row of x (N, D): an int is repeated, a tensor must have shape (N,). Returns (N,) int64."""
    if isinstance(labels, int):
        return torch.full((x.shape[0],), labels, dtype=torch.long, device=x.device)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels has shape {tuple(labels.shape)} but x has {x.shape[0]} rows; they must match")
    return labels.to(device=x.device, dtype=torch.long)


def guided_score(model: ConditionalModel, labels: int | torch.Tensor, w: float) -> ScoreFn:
    """The classifier-free guided score s_w(x, t, c) = (1 + w) s(x, t, c) - w s(x, t), eq. (cfg-score).

    Ho & Salimans 2022 write it for the noise model -sigma_t s, with the same w. w = 0 is
    the plain conditional score; w > 0 pushes samples towards x where the implied classifier
    p_t(c | x) is confident (eq. (cfg-bayes)), trading diversity for fidelity. The samples are
    not draws of p_0(x) p_0(c | x)^(1 + w) / Z in general (see the module docstring).

    Args:
        model: a conditional score model called as model(x, t, labels) and model(x, t, None)
            (e.g. `sbgm_edu.nets.ConditionalScoreNet`); if it has `num_classes`, labels are
            checked against it.
        labels: the requested class c: an int for every row, or an int tensor of shape (N,).
        w: guidance weight, a float >= 0.

    Returns:
        score_fn(x, t) -> (N, D), for x of shape (N, D) and t a float or (N,) tensor; ready for
        `sbgm_edu.sampling.sample`.
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t, labels), got {type(model).__name__}")
    labels = check_class_labels(labels, getattr(model, "num_classes", None))
    w = check_guidance_weight(w)

    def score_fn(x: torch.Tensor, t: Time) -> torch.Tensor:
        check_tensor(x, "x", ndim=2)
        conditional = model(x, t, labels_for_batch(labels, x))
        if w == 0.0:
            return conditional
        return (1.0 + w) * conditional - w * model(x, t, None)

    return score_fn


def classifier_guided_score(
    score_fn: ScoreFn, log_classifier: Callable[[torch.Tensor, Time], torch.Tensor],
    labels: int | torch.Tensor, gamma: float,
) -> ScoreFn:
    """Classifier guidance: s(x, t) + gamma grad_x ln p_t(c | x), eq. (cfg-classifier-guidance).

    Dhariwal & Nichol 2021, Algorithm 1 (they call the scale s). The gradient of the classifier
    comes from autograd. With gamma = 1 and exact scores it is the conditional score of
    eq. (cfg-bayes); with gamma = 1 + w it equals the classifier-free score of eq. (cfg-score)
    when both use the same exact p_t.

    Args:
        score_fn: the unconditional score s(x, t).
        log_classifier: (x, t) -> ln p_t(c | x) for every class, shape (N, K).
        labels: requested class, an int or an int tensor (N,).
        gamma: the guidance scale, a float >= 0.

    Returns:
        score_fn(x, t) -> (N, D).
    """
    check_score_fn(score_fn)
    check_score_fn(log_classifier)
    labels = check_class_labels(labels, None)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite float >= 0, got {gamma!r}")

    def guided(x: torch.Tensor, t: Time) -> torch.Tensor:
        check_tensor(x, "x", ndim=2)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            chosen = log_classifier(x_in, t).gather(1, labels_for_batch(labels, x)[:, None])
            (gradient,) = torch.autograd.grad(chosen.sum(), x_in)
        return score_fn(x, t) + gamma * gradient

    return guided


class LabelledMixture:
    """Exact scores of a labelled Gaussian mixture: class c is component c of sum_c p(c) N(mu_c, tau_c^2 I).

    The data p_0(x | c) = N(mu_c, tau_c^2 I), p(c) the mixture weights. Diffused by `sde`,
    p_t(x | c) = N(m_t mu_c, (m_t^2 tau_c^2 + sigma_t^2) I) and p_t(x) is the mixture (eq.
    (diffused-mixture)); both scores are known, so it stands in for a trained
    `ConditionalScoreNet`: called as model(x, t, labels) it returns grad ln p_t(x | c), and
    model(x, t, None) returns grad ln p_t(x).

    Args:
        sde: the forward SDE.
        means (K, D), stds (K,) > 0 (the tau_c), weights (K,) summing to 1: the mixture at t = 0.
    """

    def __init__(self, sde: SDE, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor) -> None:
        from sbgm_edu.scores import diffused_mixture_score

        check_sde(sde)
        self.sde = sde
        self.unconditional = diffused_mixture_score(sde, means, stds, weights)  # validates the shapes
        if (stds <= 0).any():
            raise ValueError(f"stds must all be > 0, got {stds.tolist()}")
        self.means, self.stds, self.weights = means, stds, weights
        self.num_classes = means.shape[0]
        self.null_label = self.num_classes

    def component_variances(self, x: torch.Tensor, t: Time) -> tuple[torch.Tensor, torch.Tensor]:
        """(m_t, v_t) with v_t = m_t^2 tau_c^2 + sigma_t^2 for every class: shapes () or (N, 1), and (K,) or (N, K)."""
        m = time_column(self.sde.marginal_mean_coeff(t), x)
        std = time_column(self.sde.marginal_std(t), x)
        return m, m**2 * self.stds.to(x.dtype) ** 2 + std**2

    def log_classifier(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """ln p_t(c | x) for every class c (the exact posterior, Bayes' rule): shape (N, K)."""
        check_tensor(x, "x", ndim=2)
        m, v = self.component_variances(x, t)
        squared = ((x[:, None, :] - m[..., None] * self.means.to(x.dtype)) ** 2).sum(-1)  # (N, K)
        log_joint = torch.log(self.weights.to(x.dtype)) - 0.5 * x.shape[1] * torch.log(2 * math.pi * v) \
            - 0.5 * squared / v
        return log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)

    def __call__(self, x: torch.Tensor, t: Time, labels: torch.Tensor | None = None) -> torch.Tensor:
        """grad_x ln p_t(x | c) for labels (N,), or grad_x ln p_t(x) for labels None: shape (N, D)."""
        check_tensor(x, "x", ndim=2)
        if labels is None:
            return self.unconditional(x, t)
        labels = labels_for_batch(check_class_labels(labels, self.num_classes), x)
        m, v = self.component_variances(x, t)
        v = v.expand(x.shape[0], self.num_classes).gather(1, labels[:, None])  # (N, 1)
        return -(x - m * self.means.to(x.dtype)[labels]) / v


# ---------------------------------------------------------------------------
# inpainting
# ---------------------------------------------------------------------------


def check_inpainting(known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Check known (N, D) and mask ((N, D) or (D,), bool; True = known pixel); return mask as (N, D)."""
    check_tensor(known, "known", ndim=2)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool torch.Tensor (True = known pixel), got {type(mask).__name__}"
                        + (f" of dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else ""))
    if mask.shape not in (known.shape, known.shape[1:]):
        raise ValueError(f"mask must have the shape of known {tuple(known.shape)} or ({known.shape[1]},), "
                         f"got {tuple(mask.shape)}")
    return mask.expand_as(known)


def langevin_step_size(score: torch.Tensor, noise: torch.Tensor, snr: float) -> torch.Tensor:
    """delta = 2 (r |noise| / |s|)^2, the step size of eq. (inpaint-langevin-step).

    The corrector's rule of Song et al. 2021, Algorithms 4 and 5.

    |noise| and |s| are the Euclidean norms per row, averaged over the batch, so one delta serves the
    batch. For scores of size |s| ~ sqrt(D) / sigma the step is delta ~ 2 r^2 sigma^2: it adapts to
    the noise level and to the spread of the target.

    Args:
        score: the score at the current state (only the moving coordinates), shape (N, D').
        noise: the standard normal draw of the step, same shape.
        snr: the signal-to-noise ratio r > 0.

    Returns:
        A 0-d tensor delta > 0.
    """
    noise_norm = noise.flatten(1).norm(dim=1).mean()
    score_norm = score.flatten(1).norm(dim=1).mean().clamp_min(torch.finfo(score.dtype).tiny)
    return 2.0 * (snr * noise_norm / score_norm) ** 2


def clamped_langevin_step(
    score_fn: ScoreFn, x: torch.Tensor, t: float, mask: torch.Tensor, snr: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One Langevin step on the unknown pixels (mask False) at level t, eq. (inpaint-langevin-step).

    x^u <- x^u + delta s^u(x, t) + sqrt(2 delta) noise^u, with s^u the unknown coordinates of
    score_fn(x, t) and noise standard normal: a step of unadjusted Langevin dynamics for q_t of
    eq. (inpaint-target). The known coordinates of x are returned unchanged.
    """
    unknown = ~mask
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * unknown
    score = score_fn(x, t) * unknown
    delta = langevin_step_size(score, noise, snr)
    return x + delta * score + torch.sqrt(2.0 * delta) * noise


def _check_inpaint_args(score_fn: ScoreFn, sde: SDE, known: torch.Tensor, mask: torch.Tensor, steps: int,
                        eps: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    check_score_fn(score_fn)
    check_sde(sde)
    mask = check_inpainting(known, mask)
    check_positive_int(steps, "steps")
    return known, mask, check_eps(eps)


def inpaint(
    score_fn: ScoreFn,
    sde: SDE,
    known: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    corrector_steps: int = 1,
    snr: float = 1.0,
    final_steps: int = 200,
    final_snr: float = DEFAULT_SNR,
    predictor: bool = True,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Fill in the pixels where mask is False given the known ones, without re-noising the known ones.

    A predictor-corrector sampler (Song et al. 2021) whose known pixels stay clamped to their
    clean values, followed by a block of Langevin steps at the last level:

    1. x^u ~ prior, x^k = known.
    2. For each step t -> t' of the grid linspace(1, eps, steps + 1): (if `predictor`) a
       `reverse_sde_step` of the unknown pixels, then `corrector_steps` steps of
       `clamped_langevin_step` at t' with step-size ratio `snr`. Each corrector step targets
       q_t' of eq. (inpaint-target) (up to its step-size error); the predictor only moves the
       chain towards the next, narrower level, quickly. Large steps (snr ~ 1) explore the modes
       while the noise is high.
    3. `final_steps` steps of `clamped_langevin_step` at t = eps with the small ratio
       `final_snr`: they target q_eps, which is p_0(x^u | x_0^k) up to the noise sigma_eps, and
       forget the errors of step 2 when this last chain mixes (a Gaussian conditional: tens of
       steps; a multimodal one: the weights of the modes are set in step 2).

    The result is exact only in the limit of small steps, many of them and eps -> 0. With a
    finite step, unadjusted Langevin dynamics is biased: for an isotropic Gaussian target of
    standard deviation tau, a fixed step delta has the stationary variance
    tau^2 / (1 - delta / (2 tau^2)); the rule of `langevin_step_size` then settles at
    delta = 2 r^2 tau^4 / V (r = final_snr), and the two give V = tau^2 (1 + r^2): 1.3 % too large
    in the standard deviation for r = 0.16. Add incomplete mixing between modes.

    Args:
        score_fn: s(x, t) -> (N, D), the (unconditional or guided) score.
        sde: the forward SDE (gives the prior, f and g).
        known: shape (N, D); the values at the known pixels (the others are ignored).
        mask: bool, shape (N, D) or (D,); True where the pixel is known.
        steps: number of predictor steps / noise levels (>= 1).
        generator: torch.Generator for every random draw.
        corrector_steps: Langevin steps per level (>= 0).
        snr: the ratio r > 0 of `langevin_step_size` during the annealing.
        final_steps: Langevin steps at t = eps (>= 0).
        final_snr: the ratio r > 0 of the final steps.
        predictor: take the reverse-SDE predictor step (False: annealed Langevin alone).
        eps: the last (smallest) time.

    Returns:
        Shape (N, D): equal to `known` where mask is True, a draw of the missing pixels elsewhere.
    """
    known, mask, eps = _check_inpaint_args(score_fn, sde, known, mask, steps, eps)
    check_positive_int(corrector_steps, "corrector_steps", minimum=0)
    check_positive_int(final_steps, "final_steps", minimum=0)
    for name, value in (("snr", snr), ("final_snr", final_snr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
    ts = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64).tolist()
    with torch.no_grad():
        prior = sde.sample_prior(known.shape[0], known.shape[1], generator=generator, dtype=known.dtype)
        x = torch.where(mask, known, prior.to(known.device))
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            if predictor:
                x = torch.where(mask, known, reverse_sde_step(score_fn, sde, x, t, t - t_next, generator))
            for _ in range(corrector_steps):
                x = clamped_langevin_step(score_fn, x, t_next, mask, snr, generator)
        for _ in range(final_steps):
            x = clamped_langevin_step(score_fn, x, ts[-1], mask, final_snr, generator)
    return torch.where(mask, known, x)


def reverse_sde_step(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, t: float, dt: float,
                     generator: torch.Generator | None) -> torch.Tensor:
    """One Euler-Maruyama step of the reverse-time SDE from t to t - dt (Anderson 1982; Song et al. 2021).

    x <- x - dt (f(x, t) - g(t)^2 s(x, t)) + g(t) sqrt(dt) noise, noise ~ N(0, I).
    """
    g = sde.diffusion(t).to(x.dtype)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x - dt * (sde.drift(x, t) - g**2 * score_fn(x, t)) + g * math.sqrt(dt) * noise


def inpaint_replacement(
    score_fn: ScoreFn,
    sde: SDE,
    known: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """The naive "replacement" inpainting (Song et al. 2021, Appendix I.2), kept to show its bias.

    x_1 ~ prior; for each step of the grid linspace(1, eps, steps + 1): a `reverse_sde_step` of
    every pixel, then the known pixels are overwritten by a fresh draw of the forward process,
    x^k <- m_t known + sigma_t noise at the new time, eq. (inpaint-replacement). The unknown
    pixels thus follow a path on which the known ones are noisy copies drawn independently of
    it: the result is not p_0(x^u | x_0^k) in general, and more steps do not fix it (chapter
    "Controllable generation" measures the error on a Gaussian).

    Args, Returns: as for `inpaint` (without the Langevin settings).
    """
    known, mask, eps = _check_inpaint_args(score_fn, sde, known, mask, steps, eps)
    ts = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64).tolist()
    with torch.no_grad():
        x = sde.sample_prior(known.shape[0], known.shape[1], generator=generator, dtype=known.dtype).to(known.device)
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            x = reverse_sde_step(score_fn, sde, x, t, t - t_next, generator)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = torch.where(mask, sde.perturb(known, t_next, noise), x)
    return torch.where(mask, known, x)


# ---------------------------------------------------------------------------
# an exact test problem: a correlated Gaussian
# ---------------------------------------------------------------------------


def diffused_gaussian_score(sde: SDE, mean: torch.Tensor, cov: torch.Tensor) -> ScoreFn:
    """The exact score of p_t when p_0 = N(mu, C) (any covariance): -(m_t^2 C + sigma_t^2 I)^{-1} (x - m_t mu).

    The kernel N(m_t x_0, sigma_t^2 I) turns N(mu, C) into N(m_t mu, m_t^2 C + sigma_t^2 I).

    Args:
        sde: the forward SDE. mean: shape (D,). cov: symmetric positive definite, shape (D, D).

    Returns:
        score_fn(x, t) for x of shape (N, D) and a float t.
    """
    check_sde(sde)
    check_tensor(mean, "mean", ndim=1)
    check_tensor(cov, "cov", ndim=2)
    if cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"cov must have shape ({mean.shape[0]}, {mean.shape[0]}), got {tuple(cov.shape)}")

    def score_fn(x: torch.Tensor, t: Time) -> torch.Tensor:
        check_tensor(x, "x", ndim=2)
        m = float(sde.marginal_mean_coeff(t))
        var_t = float(sde.marginal_std(t)) ** 2
        cov_t = m**2 * cov.to(x.dtype) + var_t * torch.eye(cov.shape[0], dtype=x.dtype)
        return -torch.linalg.solve(cov_t, (x - m * mean.to(x.dtype)).T).T

    return score_fn


def gaussian_conditional(
    mean: torch.Tensor, cov: torch.Tensor, mask: torch.Tensor, known: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact conditional of N(mu, C) given the coordinates where mask is True, eq. (inpaint-gaussian-conditional).

    mean_u = mu_u + C_uk C_kk^{-1} (x^k - mu_k),  cov_u = C_uu - C_uk C_kk^{-1} C_ku.

    Args:
        mean (D,), cov (D, D): the Gaussian. mask: bool (D,), True = known coordinate, with at
            least one known and one unknown coordinate.
        known: the values at the known coordinates, shape (D,) (other entries ignored).

    Returns:
        (mean_u, cov_u) of shapes (U,) and (U, U), U = number of unknown coordinates.
    """
    check_tensor(mean, "mean", ndim=1)
    check_tensor(known, "known", ndim=1)
    d = mean.shape[0]
    if cov.shape != (d, d) or known.shape != (d,):
        raise ValueError(f"cov must have shape ({d}, {d}) and known ({d},), got {tuple(cov.shape)} and "
                         f"{tuple(known.shape)}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (d,):
        raise ValueError(f"mask must be a bool tensor of shape ({d},) (True = known), got {mask!r}")
    if mask.all() or not mask.any():
        raise ValueError("mask must have at least one known (True) and one unknown (False) coordinate")
    k, u = mask, ~mask
    gain = torch.linalg.solve(cov[k][:, k], cov[k][:, u]).T  # C_uk C_kk^{-1}
    return mean[u] + gain @ (known[k] - mean[k]), cov[u][:, u] - gain @ cov[k][:, u]


# ---------------------------------------------------------------------------
# an independent judge: a digit classifier trained on real digits only
# ---------------------------------------------------------------------------

CLASSIFIER_C = 1.0
"""Regularisation constant C of the judge's support vector classifier: of 1, 10 and 100, the best on the val split."""


def digit_classifier(c: float = CLASSIFIER_C):
    """A scikit-learn support vector classifier (RBF kernel) fitted on the real TRAINING digits only.

    It never sees a generated digit, the validation split or the test split, so it can judge
    samples: `share_classified_as` is the fraction of samples it assigns to the requested class.
    Its accuracy on the 447 real test digits says how far to trust it.

    Args:
        c: the SVC's regularisation constant C > 0 (1, scikit-learn's default, has the best val accuracy
            among 1, 10 and 100).

    Returns:
        A fitted `sklearn.svm.SVC`; `.predict(x)` takes an (N, 64) array in the [-1, 1] pixel space.
    """
    from sklearn.svm import SVC

    from sbgm_edu.data import load_digit_labels, load_digits

    if isinstance(c, bool) or not isinstance(c, (int, float)) or not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be a finite float > 0, got {c!r}")
    return SVC(C=float(c), kernel="rbf", gamma="scale").fit(
        load_digits("train").numpy(), load_digit_labels("train").numpy()
    )


def predict_digits(classifier, x: torch.Tensor) -> torch.Tensor:
    """The classes the classifier assigns to the digits x (N, 64), clipped to [-1, 1] first: (N,) int64."""
    check_tensor(x, "x", ndim=2)
    if x.shape[1] != 64:
        raise ValueError(f"x must have shape (N, 64) (8x8 digits), got {tuple(x.shape)}")
    return torch.as_tensor(classifier.predict(x.detach().clamp(-1.0, 1.0).cpu().double().numpy()), dtype=torch.long)


def share_classified_as(classifier, x: torch.Tensor, labels: int | torch.Tensor) -> float:
    """The fraction of the digits x (N, 64) that the classifier assigns to the requested labels (int or (N,))."""
    labels = labels_for_batch(check_class_labels(labels, 10), x)
    return float((predict_digits(classifier, x) == labels.cpu()).to(torch.float64).mean())
