"""Distribution shift between two samples of one quantity: the population stability index (PSI).

One implementation for every caller: the canary analysis compares the predicted-probability
histograms of the canary and the stable revision, and drift monitoring compares a feature or a
score between a reference window and a recent one.

``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over bins ``i``, where ``e_i`` and ``a_i`` are the
shares of the expected (reference) and actual samples in bin ``i``. Shares of empty bins are
floored at ``epsilon`` so that the logarithm stays finite. Common reading: below 0.1 no shift,
0.1-0.25 a moderate shift, above 0.25 a major shift.

PSI is the symmetric (Jeffreys) divergence of the two histograms. For two independent samples of
one distribution, of sizes ``n`` and ``m``, over ``B`` bins, ``PSI * n * m / (n + m)`` follows a
chi-squared distribution with ``B - 1`` degrees of freedom as the samples grow (Yurdakul and
Naranjo, "Statistical properties of the population stability index", Journal of Risk Model
Validation, 2020). :func:`psi_noise_bound` turns that into the PSI that sampling noise alone
reaches with a given probability: below it, a PSI says nothing about a shift.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

DEFAULT_EPSILON = 1e-4


def psi(expected: ArrayLike, actual: ArrayLike, epsilon: float = DEFAULT_EPSILON) -> float:
    """PSI of ``actual`` against ``expected``, both counts (or shares) over the same bins, in order."""
    exp = np.asarray(expected, dtype=float)
    act = np.asarray(actual, dtype=float)
    if exp.ndim != 1 or exp.shape != act.shape or exp.size < 2:
        raise ValueError(f"PSI needs two 1-D count vectors over the same >= 2 bins, got {exp.shape} and {act.shape}")
    if (exp < 0).any() or (act < 0).any() or not (np.isfinite(exp).all() and np.isfinite(act).all()):
        raise ValueError("PSI bin counts must be finite and non-negative")
    if exp.sum() <= 0 or act.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    e_share = np.maximum(exp / exp.sum(), epsilon)
    a_share = np.maximum(act / act.sum(), epsilon)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def quantile_edges(reference: ArrayLike, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference sample's quantiles (duplicates removed), for :func:`psi_of_samples`."""
    if bins < 2:
        raise ValueError(f"need at least 2 bins, got {bins}")
    values = np.asarray(reference, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the reference sample has no finite value")
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: ArrayLike, edges: ArrayLike) -> np.ndarray:
    """Counts of the finite ``values`` in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    inner = np.asarray(edges, dtype=float)
    return np.bincount(np.searchsorted(inner, data, side="left"), minlength=inner.size + 1)


def psi_of_samples(reference: ArrayLike, current: ArrayLike, bins: int = 10, epsilon: float = DEFAULT_EPSILON) -> float:
    """PSI of two raw samples, binned at the reference's quantiles."""
    edges = quantile_edges(reference, bins)
    return psi(bin_counts(reference, edges), bin_counts(current, edges), epsilon)


def psi_noise_bound(bins: int, reference_size: int, current_size: int, false_alarm_rate: float) -> float:
    """The PSI that two independent samples of one distribution (sizes ``reference_size`` and ``current_size``,
    over ``bins`` occupied bins) exceed with probability ``false_alarm_rate``: the chi-squared quantile
    with ``bins - 1`` degrees of freedom, times ``1 / reference_size + 1 / current_size``."""
    if bins < 2 or reference_size < 1 or current_size < 1:
        raise ValueError(
            f"need >= 2 bins and two non-empty samples, got {bins} bins, {reference_size} and {current_size}"
        )
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"the false-alarm rate must be in (0, 1), got {false_alarm_rate}")
    quantile = float(stats.chi2.isf(false_alarm_rate, bins - 1))
    return quantile * (1 / reference_size + 1 / current_size)
