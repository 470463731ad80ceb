"""Closed forms and small set-ups shared by the tests of losses, training and checkpoints."""

import numpy as np
import torch
from scipy.integrate import quad

from sbgm_edu.data import load_digits
from sbgm_edu.nets import ScoreNet
from sbgm_edu.sde import VESDE


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


def tiny_setup():
    sde = VESDE(25.0)
    x_train, x_val = load_digits("train")[:256], load_digits("val")[:64]
    torch.manual_seed(0)
    net = ScoreNet(sde, hidden=32, depth=2, data_std=0.5, data_mean=x_train.mean(0))
    return net, sde, x_train, x_val
