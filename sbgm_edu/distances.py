"""How far apart two distributions are: the numbers behind two of the book's claims.

- `prior_gap_kl(data, sde)`: how far the prior pi = N(0, sigma_1^2 I) is from the
  true p_1 of a data set (chapter "The VE SDE", eq. (ve-prior)). Computed in
  closed form from the data's mean and covariance; it is a lower bound on
  KL(p_1 || pi) (see its docstring).
- `wasserstein2_empirical(x, y)`: the exact 2-Wasserstein distance between two
  equal-size point clouds (an optimal assignment), used in "The probability-flow
  ODE" to measure where PF-ODE samples land against exact samples.
- `gaussian_kl`: KL divergence between two multivariate Gaussians.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sbgm_edu._checks import check_gaussians, check_nonempty, check_tensor
from sbgm_edu.sde import SDE, check_sde


def gaussian_kl(mean0: torch.Tensor, cov0: torch.Tensor, mean1: torch.Tensor, cov1: torch.Tensor) -> float:
    """KL(N(mean0, cov0) || N(mean1, cov1)) in nats.

    Formula: 1/2 [tr(cov1^-1 cov0) + (mean1 - mean0)^T cov1^-1 (mean1 - mean0) - D + ln det cov1 - ln det cov0].

    Args:
        mean0, mean1: means, shape (D,).
        cov0, cov1: symmetric positive definite covariances, shape (D, D).

    Returns:
        The divergence, a float >= 0 (computed in float64 with Cholesky factors).
    """
    mean0, cov0, mean1, cov1 = check_gaussians(mean0, cov0, mean1, cov1, ("mean0", "cov0", "mean1", "cov1"))
    chol0, info0 = torch.linalg.cholesky_ex(cov0)
    chol1, info1 = torch.linalg.cholesky_ex(cov1)
    if info0 != 0 or info1 != 0:
        raise ValueError("cov0 and cov1 must be symmetric positive definite")
    dim = mean0.shape[0]
    a = torch.linalg.solve_triangular(chol1, chol0, upper=False)  # L1^-1 L0: tr(cov1^-1 cov0) = |A|_F^2
    b = torch.linalg.solve_triangular(chol1, (mean1 - mean0)[:, None], upper=False)
    logdet0 = 2 * torch.log(torch.diagonal(chol0)).sum()
    logdet1 = 2 * torch.log(torch.diagonal(chol1)).sum()
    return float(0.5 * ((a**2).sum() + (b**2).sum() - dim + logdet1 - logdet0))


def prior_gap_kl(data: torch.Tensor, sde: SDE) -> float:
    """How far the prior pi = N(0, prior_std^2 I) is from the true p_1 of a data set, eq. (ve-prior).

    p_1 is the data set diffused to t = 1: the mixture (1/M) sum_i N(m_1 x_i, sigma_1^2 I).
    Its mean m_1 mu and covariance m_1^2 Sigma + sigma_1^2 I are exact (mu, Sigma: the
    data's mean and population covariance). This returns KL(N(mean, cov) || pi) for
    that moment-matched Gaussian, in closed form over the eigenvalues l_j of m_1^2 Sigma:

        1/2 [ sum_j (l_j + sigma_1^2) / s^2 - 1 - ln((l_j + sigma_1^2) / s^2) + m_1^2 |mu|^2 / s^2 ]

    with s = prior_std. Because ln N(mean, cov) - ln pi is quadratic in x, its mean
    under p_1 equals its mean under the Gaussian, so
    KL(p_1 || pi) = KL(p_1 || N(mean, cov)) + this value >= this value:
    a guaranteed lower bound on the true gap, in nats.

    Args:
        data: the data set, shape (M, D), M >= 2.
        sde: the forward SDE (e.g. `VESDE(sigma)`).

    Returns:
        The lower bound on KL(p_1 || pi), a float >= 0 (nats, summed over the D dimensions).
    """
    check_tensor(data, "data", ndim=2)
    if data.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 points, got {data.shape[0]}")
    check_sde(sde)
    x = data.to(torch.float64)
    m1 = float(sde.marginal_mean_coeff(1.0))
    var1 = float(sde.marginal_std(1.0)) ** 2
    prior_var = sde.prior_std() ** 2
    mu = x.mean(dim=0)
    centred = x - mu
    cov = centred.T @ centred / x.shape[0]  # population covariance of the data set
    eig = torch.linalg.eigvalsh(cov).clamp_min(0.0)
    ratio = (m1**2 * eig + var1) / prior_var  # eigenvalues of cov_1 / s^2
    mean_term = m1**2 * float((mu**2).sum()) / prior_var
    return float(0.5 * ((ratio - 1 - torch.log(ratio)).sum() + mean_term))


def wasserstein2_empirical(x: torch.Tensor, y: torch.Tensor) -> float:
    """The 2-Wasserstein distance between two point clouds with the same number of points.

    W_2(x, y)^2 = min over permutations pi of (1/N) sum_i |x_i - y_pi(i)|^2: an optimal
    assignment (scipy's linear_sum_assignment), exact for equally weighted clouds.
    Cost O(N^3): fine for N up to a few thousand. Two independent samples of the
    same distribution are at a positive distance (the sampling floor), so compare
    against that floor.

    Args:
        x, y: point clouds, shape (N, D) each.

    Returns:
        W_2, a float >= 0 in the units of x.
    """
    check_nonempty(check_tensor(x, "x", ndim=2), "x")
    check_tensor(y, "y", ndim=2)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    cost = torch.cdist(x.to(torch.float64), y.to(torch.float64)) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return math.sqrt(float(cost[rows, cols].mean()))


def sliced_wasserstein2(
    x: torch.Tensor, y: torch.Tensor, projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """The sliced 2-Wasserstein distance between two equal-size point clouds (Rabin et al. 2011).

    SW_2(x, y)^2 = E_theta[ W_2(theta.x, theta.y)^2 ], theta uniform on the unit sphere: the mean over
    random directions of the squared 1-D distance of the projections. In 1-D, W_2 between N points
    and N points pairs them in sorted order: W_2^2 = (1/N) sum_i (a_(i) - b_(i))^2. The expectation is
    estimated with `projections` directions from `generator`. Cost O(projections N log N), so 10^4
    points or more are cheap; like every sample-based distance it has a Monte Carlo floor (two
    samples of the same distribution are not at distance 0), which should be shown beside it.

    Args:
        x, y: point clouds, shape (N, D) each.
        projections: number of random directions (int >= 1).
        generator: torch.Generator for the directions.

    Returns:
        SW_2, a float >= 0 in the units of x.
    """
    check_tensor(x, "x", ndim=2)
    check_tensor(y, "y", ndim=2)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    if isinstance(projections, bool) or not isinstance(projections, int) or projections < 1:
        raise ValueError(f"projections must be an int >= 1, got {projections!r}")
    theta = torch.randn(projections, x.shape[1], generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=1, keepdim=True)  # (projections, D), rows uniform on the sphere
    px = np.sort((theta @ x.detach().to(torch.float64).T).numpy(), axis=1)  # (projections, N), sorted rows
    py = np.sort((theta @ y.detach().to(torch.float64).T).numpy(), axis=1)  # (numpy sorts ~3x faster here)
    return math.sqrt(float(((px - py) ** 2).mean()))
