"""Score networks s_theta(x, t) ~ grad_x ln p_t(x) for the 8x8 digits (and other (N, D) data).

Two networks with the same call, `model(x, t)`, x of shape (N, D) and t a
float or an (N,) tensor, both returning the score estimate of shape (N, D):

- `OriginalScoreNet` is the network of the companion notebook
  `sbgms/sbgm_example.ipynb` (J. M. Tomczak, `intro_dgm`), kept so that chapter
  "Why the first attempt fails" can reproduce it: an MLP whose input is
  x_t + tanh(W t + b) (time *added* to the data) and whose output is clamped
  to [-3, 3].
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


class OriginalScoreNet(nn.Module):
    """The score network of the original notebook, written anew and kept faithful.

    The original computes `snet(x_t + time_embedding(t))` with
    `time_embedding = Sequential(Linear(1, D), Tanh())` and
    `snet = Linear(D, M), SiLU, Linear(M, M), SiLU, Linear(M, M), SiLU, Linear(M, D), Hardtanh(-3, 3)`
    (M = 512), and trains it so that `snet` approximates the *negative* score
    (its sampler's minus sign compensates). Here `forward` returns the score
    itself, s_theta(x, t) = -snet(x + tanh(W t + b)), so both networks of this
    module can be used the same way; the parameters are those of the original.

    Known weaknesses (chapter "Why the first attempt fails"): time is a shift of
    the input, not an input of its own, and the clamp to [-3, 3] cannot
    represent scores of size |x_1| / sigma_t > 3 (small sigma_t).

    Args:
        dim: data dimension D (64 for the digits).
        hidden: width M of the hidden layers (512 in the original).
    """

    def __init__(self, dim: int = 64, hidden: int = 512) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.hidden = check_positive_int(hidden, "hidden")
        self.time_embedding = nn.Sequential(nn.Linear(1, dim), nn.Tanh())
        self.snet = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
            nn.Hardtanh(min_val=-3.0, max_val=3.0),
        )

    def settings(self) -> dict:
        """The constructor arguments, stored in checkpoints next to the weights."""
        return {"dim": self.dim, "hidden": self.hidden}

    def forward(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Score estimate s_theta(x, t) = -snet(x + tanh(W t + b)).

        Args:
            x: noisy data x_t, shape (N, dim).
            t: time in [0, 1], a float or an (N,) tensor.

        Returns:
            Shape (N, dim); every entry lies in [-3, 3].
        """
        _check_inputs(x, t, self.dim)
        t_embedding = self.time_embedding(_time_as_column(t, x))
        return -self.snet(x + t_embedding)


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
       predicts the noise x_1 there, at unit scale. With lambda_t = sigma_t^2
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
        if isinstance(data_std, bool) or not isinstance(data_std, (int, float)) or not data_std > 0:
            raise ValueError(f"data_std must be a float > 0, got {data_std!r}")
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
        sigma_t = _time_as_column(time_column(self.sde.marginal_std(t), x), x)  # (N, 1)
        m_t = _time_as_column(time_column(self.sde.marginal_mean_coeff(t), x), x)
        variance = m_t**2 * self.data_std**2 + sigma_t**2  # v_t
        c_in = torch.rsqrt(variance)
        correction = self.mlp(torch.cat([c_in * x, self.time_features(sigma_t)], dim=1))
        mean = m_t * self.data_mean.to(x.dtype)
        return -(x - mean) / variance + (self.data_std * c_in / sigma_t) * correction


class CovarianceScoreNet(ScoreNet):
    """ScoreNet whose Gaussian part has the full covariance of the data: the likelihood model of chapter 10.

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
