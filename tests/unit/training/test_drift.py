"""PSI against values computed by hand, and its noise bound against simulated samples of one distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churnops.training.drift import bin_counts, psi, psi_noise_bound, psi_of_samples, quantile_edges


def test_psi_of_a_known_shift_matches_the_hand_computed_value() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), abs=1e-12)
    # Three bins: 0.4/0.4/0.2 -> 0.2/0.4/0.4
    expected = (0.2 - 0.4) * math.log(0.2 / 0.4) + 0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert psi([40, 40, 20], [2, 4, 4]) == pytest.approx(expected, abs=1e-12)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi([10, 20, 30], [100, 200, 300]) == pytest.approx(0.0, abs=1e-12)
    small, large = psi([50, 50], [45, 55]), psi([50, 50], [10, 90])
    assert 0 < small < 0.1 < 0.25 < large


def test_empty_bins_are_floored_at_epsilon_instead_of_infinite() -> None:
    value = psi([50, 50, 0], [50, 40, 10], epsilon=1e-4)
    by_hand = (0.5 - 0.5) * 0 + (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert value == pytest.approx(by_hand, abs=1e-12)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([1, 2], [1, 2, 3]), ([1], [1]), ([0, 0], [1, 1]), ([1, -1], [1, 1]), ([1, float("nan")], [1, 1])],
)
def test_psi_refuses_inputs_it_cannot_compare(expected: list[float], actual: list[float]) -> None:
    with pytest.raises(ValueError):
        psi(expected, actual)


def test_samples_are_binned_at_the_reference_quantiles() -> None:
    reference = np.arange(100, dtype=float)
    edges = quantile_edges(reference, bins=4)
    assert edges.tolist() == pytest.approx([24.75, 49.5, 74.25])
    assert bin_counts(reference, edges).tolist() == [25, 25, 25, 25]
    assert psi_of_samples(reference, reference, bins=4) == pytest.approx(0.0, abs=1e-12)
    shifted = reference + 50
    # shifted: 0 below 24.75, 0 in (24.75, 49.5], 25 in (49.5, 74.25], 75 above
    by_hand = 2 * (1e-4 - 0.25) * math.log(1e-4 / 0.25) + 0 + (0.75 - 0.25) * math.log(0.75 / 0.25)
    assert psi_of_samples(reference, shifted, bins=4) == pytest.approx(by_hand, abs=1e-12)


@pytest.mark.parametrize(("size", "bins", "rate"), [(200, 10, 0.05), (1000, 4, 0.05), (300, 10, 0.01)])
def test_the_noise_bound_is_exceeded_by_unshifted_samples_at_about_its_false_alarm_rate(
    size: int, bins: int, rate: float
) -> None:
    rng = np.random.default_rng(11)
    shares = rng.dirichlet(np.full(bins, 5.0))
    draws = 4000
    reference = rng.multinomial(size, shares, size=draws)
    current = rng.multinomial(size, shares, size=draws)
    values = np.array([psi(r, c) for r, c in zip(reference, current)])
    observed = float(np.mean(values >= psi_noise_bound(bins, size, size, rate)))
    # the chi-squared law is asymptotic: the observed rate is near the nominal one, not exactly it
    assert 0.4 * rate <= observed <= 1.6 * rate


def test_the_noise_bound_shrinks_with_the_samples_and_the_false_alarm_rate_it_allows() -> None:
    assert psi_noise_bound(10, 100, 100, 0.01) > psi_noise_bound(10, 1000, 1000, 0.01)
    assert psi_noise_bound(10, 1000, 1000, 0.001) > psi_noise_bound(10, 1000, 1000, 0.01)
    with pytest.raises(ValueError, match="false-alarm rate"):
        psi_noise_bound(10, 100, 100, 0.0)
    with pytest.raises(ValueError, match="bins"):
        psi_noise_bound(1, 100, 100, 0.01)
