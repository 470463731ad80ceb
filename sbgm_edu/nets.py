"""Score networks s_theta(x, t) ~ grad_x ln p_t(x) for the 8x8 digits (and other (N, D) data).

Two networks with the same call, `model(x, t)`, x of shape (N, D) and t a
float or an (N,) tensor, both returning the score estimate of shape (N, D):

- `OriginalScoreNet` is the network of the companion notebook
  `sbgms/sbgm_example.ipynb` (J. M. Tomczak, `intro_dgm`), kept so that chapter
  "Why the first attempt fails" can reproduce it: an MLP whose input is
  x_t + tanh(W t + b) (time *added* to the data) and whose output is clamped
  to [-3, 3]. It lives with the rest of the reproduction in `sbgm_edu.original`
  and is importable from here.
- `ScoreNet` is the improved network of chapter "Training a score model"
  (book/ch06_training.ipynb): the exact score of a Gaussian fitted to the data
  plus a learned correction; time enters as a separate input (Fourier features
  of ln sigma_t), and input and output are scaled to unit size at every noise
  level (after the preconditioning of Karras et al. 2022).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sbgm_edu._checks import Time, check_positive_int, check_tensor, check_time, time_column
from sbgm_edu.original import OriginalScoreNet
from sbgm_edu.sde import SDE, check_sde


def _check_inputs(x: torch.Tensor, t: Time, dim: int) -> None:
    check_tensor(x, "x", ndim=2)
    if x.shape[1] != dim:
        raise ValueError(f"x must have shape (N, {dim}), got {tuple(x.shape)}")
    check_time(t)
    if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] != x.shape[0]:
        raise ValueError(f"t has {t.shape[0]} times but x has {x.shape[0]} rows; they must match")


def _time_as_column(t: Time, x: torch.Tensor) -> torch.Tensor:
    """t (float, 0-d or (N,) tensor) as an (N, 1) tensor with the dtype and device of x."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1).expand(x.shape[0], 1)


class ScoreNet(nn.Module):
    """The improved score network: a Gaussian score plus a learned, well-scaled correction.

    For a kernel N(m_t x_0, sigma_t^2 I) (m_t = 1 for the VE SDE) and the
    per-coordinate data variance v_t = m_t^2 s_data^2 + sigma_t^2,

        s_theta(x, t) = -(x - m_t mu) / v_t + s_data / (sigma_t sqrt(v_t)) F(c_in x, c_noise),   eq. (ch6-scorenet)

    with mu the mean image of the data, c_in = 1 / sqrt(v_t) and
    c_noise = ln(sigma_t) / 4. Each choice is justified in chapter "Training a
    score model":

    1. The first term is the exact score of Gaussian data N(mu, s_data^2 I): with
       F = 0 the network already knows the mean image and the overall scale.
       It matters most at large sigma_t, where the weight lambda_t = sigma_t^2
       makes the loss nearly blind to errors of the denoised image (the
       preconditioning of Karras et al. 2022, with the data mean added).
    2. The MLP F sees the input scaled to about unit variance (c_in x) and its
       output is scaled so that, at small sigma_t, -sigma_t s_theta ~ -F: F
       predicts minus the noise there (the noise model is eps_theta ~ -F), at unit scale. With lambda_t = sigma_t^2
       every time contributes to the loss at a similar size.
    3. Time is an input of its own, not a shift of x: Fourier features
       [c, sin(w_k c), cos(w_k c)] of c = c_noise, w_k = pi 2^(k/2), k = 0..F-1.
       The score depends on the noise level sigma_t, and ln sigma_t spreads the
       levels evenly (sigma_t spans more than three orders of magnitude).
       There is no clamp: the score may be as large as it needs to be.

    Args:
        sde: the forward SDE (gives sigma_t and m_t); `VESDE` in the book.
        dim: data dimension D.
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        fourier_features: number F of frequencies of the time features.
        data_std: s_data, the root-mean-square distance of a coordinate to its mean.
        data_mean: mu, shape (dim,), the mean of the training data; zeros if None.
            It is a buffer, saved in checkpoints with the weights.
    """

    def __init__(
        self,
        sde: SDE,
        dim: int = 64,
        hidden: int = 256,
        depth: int = 3,
        fourier_features: int = 8,
        data_std: float = 0.5,
        data_mean: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        check_sde(sde)
        if isinstance(data_std, bool) or not isinstance(data_std, (int, float)) or not 0 < data_std < math.inf:
            raise ValueError(f"data_std must be a finite float > 0, got {data_std!r}")
        self.sde = sde
        self.dim = check_positive_int(dim, "dim")
        self.hidden = check_positive_int(hidden, "hidden")
        self.depth = check_positive_int(depth, "depth")
        self.fourier_features = check_positive_int(fourier_features, "fourier_features")
        self.data_std = float(data_std)
        if data_mean is None:
            data_mean = torch.zeros(dim)
        check_tensor(data_mean, "data_mean", ndim=1)
        if data_mean.shape[0] != dim:
            raise ValueError(f"data_mean must have shape ({dim},), got {tuple(data_mean.shape)}")
        self.register_buffer("data_mean", data_mean.detach().clone().float())
        # fixed, not learned, and not saved: rebuilt from `fourier_features` when a checkpoint is loaded
        self.register_buffer(
            "frequencies", math.pi * 2.0 ** (torch.arange(fourier_features) / 2.0), persistent=False
        )
        n_time = 1 + 2 * fourier_features
        layers: list[nn.Module] = [nn.Linear(dim + n_time, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def for_data(cls, sde: SDE, data: torch.Tensor, **kwargs) -> ScoreNet:
        """A ScoreNet whose Gaussian part fits `data` (N, D): mu = mean image, s_data = rms distance to it.

        Other keyword arguments (hidden, depth, fourier_features) go to the constructor.
        """
        check_tensor(data, "data", ndim=2)
        mean = data.mean(dim=0)
        std = float(((data - mean) ** 2).mean().sqrt())
        return cls(sde, dim=data.shape[1], data_std=std, data_mean=mean, **kwargs)

    def settings(self) -> dict:
        """The constructor arguments except `sde` and `data_mean` (a saved buffer), for checkpoints."""
        return {
            "dim": self.dim,
            "hidden": self.hidden,
            "depth": self.depth,
            "fourier_features": self.fourier_features,
            "data_std": self.data_std,
        }

    def time_features(self, sigma_t: torch.Tensor) -> torch.Tensor:
        """Fourier features of c_noise = ln(sigma_t) / 4: (N, 1) -> (N, 1 + 2F)."""
        c_noise = torch.log(sigma_t) / 4.0
        angles = c_noise * self.frequencies.to(sigma_t.dtype)
        return torch.cat([c_noise, torch.sin(angles), torch.cos(angles)], dim=1)

    def forward(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Score estimate s_theta(x, t) (see the class docstring).

        Args:
            x: noisy data x_t, shape (N, dim).
            t: time in (0, 1], a float or an (N,) tensor.

        Returns:
            Shape (N, dim).
        """
        _check_inputs(x, t, self.dim)
        if (torch.as_tensor(t) <= 0).any():
            raise ValueError("t must be > 0 for ScoreNet (sigma_t = 0 at t = 0); use t >= eps = 1e-5")
        return self.preconditioned_score(x, t)

    def preconditioned_score(self, x: torch.Tensor, t: Time, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (ch6-scorenet) for checked inputs; `extra` (N, k) features are appended to the MLP's input."""
        sigma_t = _time_as_column(time_column(self.sde.marginal_std(t), x), x)  # (N, 1)
        m_t = _time_as_column(time_column(self.sde.marginal_mean_coeff(t), x), x)
        variance = m_t**2 * self.data_std**2 + sigma_t**2  # v_t
        c_in = torch.rsqrt(variance)
        features = [c_in * x, self.time_features(sigma_t)] + ([] if extra is None else [extra])
        correction = self.mlp(torch.cat(features, dim=1))
        mean = m_t * self.data_mean.to(x.dtype)
        return -(x - mean) / variance + (self.data_std * c_in / sigma_t) * correction


class ConditionalScoreNet(ScoreNet):
    """`ScoreNet` with a class label as a second input: s_theta(x, t, c) ~ grad_x ln p_t(x | c).

    Chapter "Controllable generation" (book/ch12_guidance.ipynb). The score is
    eq. (ch6-scorenet) with one change: the MLP F also receives a learned
    embedding e_c of the label, F(c_in x, c_noise, e_c). The embedding table has
    `num_classes + 1` rows; the last one, index `null_label` = num_classes, is the
    "no label" entry, so the same network also estimates the unconditional score
    s_theta(x, t) = s_theta(x, t, null) ~ grad_x ln p_t(x). Training replaces each
    label by `null_label` with a small probability (label dropout), which teaches
    both scores at once (classifier-free guidance, Ho & Salimans 2022).

    Args:
        sde, dim, hidden, depth, fourier_features, data_std, data_mean: as for `ScoreNet`.
        num_classes: number of classes K (10 for the digits); labels are 0..K-1.
        label_features: size of the label embedding e_c.
    """

    def __init__(
        self,
        sde: SDE,
        dim: int = 64,
        hidden: int = 256,
        depth: int = 3,
        fourier_features: int = 8,
        data_std: float = 0.5,
        data_mean: torch.Tensor | None = None,
        num_classes: int = 10,
        label_features: int = 16,
    ) -> None:
        super().__init__(sde, dim, hidden, depth, fourier_features, data_std, data_mean)
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.label_features = check_positive_int(label_features, "label_features")
        self.null_label = num_classes
        self.label_embedding = nn.Embedding(num_classes + 1, label_features)
        # the first layer now also reads the label embedding
        self.mlp[0] = nn.Linear(dim + 1 + 2 * fourier_features + label_features, hidden)

    def settings(self) -> dict:
        """The constructor arguments except `sde` and `data_mean` (a saved buffer), for checkpoints."""
        return {**super().settings(), "num_classes": self.num_classes, "label_features": self.label_features}

    def check_labels(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """Check that labels is an integer tensor of shape (n,) with entries in 0..num_classes (null included)."""
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer torch.Tensor of shape ({n},), got {labels!r}")
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), one label per row of x, got {tuple(labels.shape)}")
        if ((labels < 0) | (labels > self.null_label)).any():
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1} (or null_label = {self.null_label}), "
                             f"got {labels.min().item()}..{labels.max().item()}")
        return labels

    def forward(self, x: torch.Tensor, t: Time, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Score estimate s_theta(x, t, c) (eq. (ch6-scorenet), the MLP also reading e_c).

        Args:
            x: noisy data x_t, shape (N, dim).
            t: time in (0, 1], a float or an (N,) tensor.
            labels: class labels, an int tensor of shape (N,) in 0..num_classes - 1; the entry
                `null_label` or labels=None gives the unconditional score.

        Returns:
            Shape (N, dim).
        """
        _check_inputs(x, t, self.dim)
        if (torch.as_tensor(t) <= 0).any():
            raise ValueError("t must be > 0 for ConditionalScoreNet (sigma_t = 0 at t = 0); use t >= eps = 1e-5")
        if labels is None:
            labels = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
        labels = self.check_labels(labels, x.shape[0])
        return self.preconditioned_score(x, t, extra=self.label_embedding(labels).to(x.dtype))


class CovarianceScoreNet(ScoreNet):
    """ScoreNet whose Gaussian part has the full covariance of the data: the likelihood model of chapter 11.

    For data with mean mu and covariance Sigma = U diag(l) U^T, the Gaussian N(mu, Sigma) diffused by
    the kernel N(m_t x_0, sigma_t^2 I) is N(m_t mu, m_t^2 Sigma + sigma_t^2 I), whose score is

        s_theta(x, t) = -U diag(1 / (m_t^2 l + sigma_t^2)) U^T (x - m_t mu)
                        + s_data / (sigma_t sqrt(v_t)) F(c_in x, c_noise),       eq. (ch10-covariance-scorenet)

    the first term of eq. (ch6-scorenet) with the isotropic s_data^2 I replaced by Sigma (the
    correction F, c_in, c_noise and v_t are those of `ScoreNet`). The last layer of F starts at
    zero, so before training the model *is* the full-covariance Gaussian, and its PF-ODE
    likelihood is that Gaussian's (diffused to t = eps): training can only start from that
    baseline. U and l are buffers, saved in checkpoints with the weights.

    Args:
        sde, dim, hidden, depth, fourier_features, data_std, data_mean: as for `ScoreNet`.
        data_cov: Sigma, shape (dim, dim), symmetric positive definite; data_std^2 I if None.
    """

    def __init__(self, sde: SDE, dim: int = 64, hidden: int = 256, depth: int = 3, fourier_features: int = 8,
                 data_std: float = 0.5, data_mean: torch.Tensor | None = None,
                 data_cov: torch.Tensor | None = None) -> None:
        super().__init__(sde, dim, hidden, depth, fourier_features, data_std, data_mean)
        if data_cov is None:
            data_cov = torch.eye(dim, dtype=torch.float64) * data_std**2
        check_tensor(data_cov, "data_cov", ndim=2)
        if data_cov.shape != (dim, dim) or not torch.allclose(data_cov, data_cov.T):
            raise ValueError(f"data_cov must be a symmetric ({dim}, {dim}) matrix, got shape {tuple(data_cov.shape)}")
        eigenvalues, eigenvectors = torch.linalg.eigh(data_cov.double())
        if eigenvalues.min() <= 0:
            raise ValueError(f"data_cov must be positive definite, its smallest eigenvalue is {eigenvalues.min():.3g}")
        self.register_buffer("cov_eigenvalues", eigenvalues.float())
        self.register_buffer("cov_eigenvectors", eigenvectors.float())
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    @classmethod
    def for_data(cls, sde: SDE, data: torch.Tensor, extra_variance: float = 0.0, **kwargs) -> CovarianceScoreNet:
        """mu = mean image, Sigma = sample covariance (1/N) + extra_variance I, s_data = sqrt(mean of diag Sigma).

        For digits dequantised by U(-w/2, w/2) per pixel, extra_variance = w^2 / 12 gives the exact
        covariance of the dequantised data from the raw digits.
        """
        check_tensor(data, "data", ndim=2)
        data = data.double()
        mean = data.mean(dim=0)
        cov = (data - mean).T @ (data - mean) / data.shape[0] + extra_variance * torch.eye(data.shape[1],
                                                                                           dtype=torch.float64)
        std = float(torch.diagonal(cov).mean().sqrt())
        return cls(sde, dim=data.shape[1], data_std=std, data_mean=mean.float(), data_cov=cov, **kwargs)

    def gaussian_score(self, x: torch.Tensor, m_t: torch.Tensor, sigma_t: torch.Tensor) -> torch.Tensor:
        """-(m_t^2 Sigma + sigma_t^2 I)^-1 (x - m_t mu) for x (N, D), m_t and sigma_t (N, 1)."""
        u = self.cov_eigenvectors.to(x.dtype)
        centred = (x - m_t * self.data_mean.to(x.dtype)) @ u  # coordinates in the eigenbasis
        return -(centred / (m_t**2 * self.cov_eigenvalues.to(x.dtype) + sigma_t**2)) @ u.T

    def forward(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Score estimate s_theta(x, t), eq. (ch10-covariance-scorenet). x (N, dim), t float or (N,) -> (N, dim)."""
        _check_inputs(x, t, self.dim)
        if (torch.as_tensor(t) <= 0).any():
            raise ValueError("t must be > 0 for CovarianceScoreNet (sigma_t = 0 at t = 0); use t >= eps = 1e-5")
        sigma_t = _time_as_column(time_column(self.sde.marginal_std(t), x), x)  # (N, 1)
        m_t = _time_as_column(time_column(self.sde.marginal_mean_coeff(t), x), x)
        c_in = torch.rsqrt(m_t**2 * self.data_std**2 + sigma_t**2)
        correction = self.mlp(torch.cat([c_in * x, self.time_features(sigma_t)], dim=1))
        return self.gaussian_score(x, m_t, sigma_t) + (self.data_std * c_in / sigma_t) * correction


__all__ = ["ConditionalScoreNet", "CovarianceScoreNet", "OriginalScoreNet", "ScoreNet"]
