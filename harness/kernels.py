"""Kernel-regime predictions and kernel statistics, in NumPy (backend-neutral)."""
from __future__ import annotations

import numpy as np


def relative_change(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b||_F / ||b||_F."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def relative_kernel_drift(kernels: np.ndarray) -> float:
    """sup_t ||Theta_t - Theta_0||_F / ||Theta_0||_F over a stack of kernels recorded along training."""
    k0 = kernels[0]
    return float(max(relative_change(k, k0) for k in kernels))


def linearised_gd(theta_test_train, theta_train, f0_test, f0_train, y, eta: float, steps: int) -> np.ndarray:
    """Outputs at test points of the model linearised at init after ``steps`` of GD on 0.5*MSE (mean over the m
    training points): f_lin_T(x) = f0(x) - Th(x,X) Th^-1 (I - (I - eta Th/m)^T)(f0(X) - y).

    Computed in the eigenbasis of Th, so a singular kernel is handled (the term is (1 - (1 - eta l/m)^T)/l -> T
    eta/m as l -> 0)."""
    m = theta_train.shape[0]
    lam, u = np.linalg.eigh(0.5 * (theta_train + theta_train.T))
    r = u.T @ (np.asarray(f0_train) - np.asarray(y)).reshape(m, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(np.abs(lam) > 1e-14 * np.abs(lam).max(),
                     (1 - (1 - eta * lam / m) ** steps) / lam, steps * eta / m)
    return np.asarray(f0_test).reshape(theta_test_train.shape[0], -1) - theta_test_train @ (u @ (g[:, None] * r))


def rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(a))))
