"""Generated data as the features read it, with the generator's ground truth beside it.

The behavioural tests need thousands of customers in seconds, so they skip the ingest stage (its own tests
cover it): the generator's clean objects (no anomalies) are read straight into frames of the published
columns, with ``customer_id`` standing in for the token.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from churnops.local import datagen, rawformat
from churnops.training.features import LABEL

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
ORACLE_STEP_H = 0.5  # the grid of cancellation times the oracle sums over


@dataclass(frozen=True)
class GeneratedLake:
    """Published-format events and subscriptions, and the generator's per-customer truth (by token)."""

    events: pd.DataFrame
    subscriptions: pd.DataFrame
    truth: pd.DataFrame  # indexed by customer_token: churn_probability, churn_time, contract, ...
    hours: int

    def true_labels(self, rows: pd.DataFrame, horizon_h: float) -> np.ndarray:
        """1 where the generator cancels the row's customer within ``(cutoff, cutoff + horizon]``."""
        churn = self.truth.loc[rows["customer_token"], "churn_time"].to_numpy()
        cutoff = pd.DatetimeIndex(rows["cutoff"])
        return ((churn > cutoff) & (churn <= cutoff + pd.Timedelta(hours=horizon_h))).astype(np.int64)


def generate_lake(hours: int, customers: int, seed: int, start: datetime = START) -> GeneratedLake:
    """``hours`` generated hours of ``customers`` customers, as published frames."""
    data = datagen.generate(hours, customers, start=start, seed=seed)
    event_frame, subs = rawformat.published_frames(data.objects)
    truth = data.customers.rename(columns={"customer_id": "customer_token"}).set_index("customer_token")
    return GeneratedLake(events=event_frame, subscriptions=subs, truth=truth, hours=hours)


def label_agreement(lake: GeneratedLake, frame: pd.DataFrame, horizon_h: float) -> float:
    """The share of rows whose lake label equals the generator's truth (1.0 on clean data)."""
    return float((frame[LABEL].to_numpy() == lake.true_labels(frame, horizon_h)).mean())


def _hours(stamps: pd.Series) -> np.ndarray:
    """Hours since START."""
    return ((pd.DatetimeIndex(stamps) - pd.Timestamp(START)) / pd.Timedelta(hours=1)).to_numpy()


def _recent_counts(lake: GeneratedLake, rows: pd.DataFrame, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the customer's events in each of the ``n_bins`` hours before the cutoff (latest first): all
    events, and support contacts and errors."""
    tokens = rows["customer_token"].astype(str).to_numpy()
    cutoff_h = _hours(rows["cutoff"])
    codes = pd.Index(pd.unique(tokens))
    row_code = codes.get_indexer(tokens)
    ev_code = codes.get_indexer(lake.events["customer_token"].astype(str))
    ev_h = _hours(lake.events["event_time"])
    trouble = lake.events["event_type"].isin(["support_contact", "error"]).to_numpy()
    counts, troubles = np.zeros((len(rows), n_bins)), np.zeros((len(rows), n_bins))
    for cutoff in np.unique(cutoff_h):
        age = cutoff - ev_h
        inside = (ev_code >= 0) & (age > 0) & (age <= n_bins)
        cell = ev_code[inside] * n_bins + np.minimum(age[inside].astype(np.int64), n_bins - 1)
        at_cutoff = cutoff_h == cutoff
        shape = (len(codes), n_bins)
        counts[at_cutoff] = np.bincount(cell, minlength=shape[0] * shape[1]).reshape(shape)[row_code[at_cutoff]]
        per_cell = np.bincount(cell, weights=trouble[inside], minlength=shape[0] * shape[1]).reshape(shape)
        troubles[at_cutoff] = per_cell[row_code[at_cutoff]]
    return counts, troubles


def _log_likelihood(counts: np.ndarray, troubles: np.ndarray, expected: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood of hourly event counts (``expected`` each), of which ``troubles`` are support
    contacts or errors (each event one with probability ``share``), summed over the last axis."""
    return (
        counts * np.log(expected) - expected + troubles * np.log(share) + (counts - troubles) * np.log1p(-share)
    ).sum(axis=-1)


def oracle_scores(lake: GeneratedLake, rows: pd.DataFrame, horizon_h: float, history_h: int = 12) -> np.ndarray:
    """The generator's own posterior probability that each row's customer cancels within the horizon.

    It knows what no model sees: the customer's latent churn probability, activity level and support
    propensity, and the generator's laws (a cancellation time uniform over the span, activity fading as
    ``FLOOR + (1 - FLOOR) * (1 - exp(-(T - t) / TAU))`` before it, more support contacts and errors
    close to it). From the customer's events of the last ``history_h`` hours (hourly counts of all
    events and of support contacts and errors, as Poisson processes), Bayes' rule over the cancellation
    time gives P(T in (cutoff, cutoff + horizon] | T > cutoff). Only the generator's random quiet
    periods are left out. Its ROC-AUC is the ceiling a model of the observable data should not pass.
    """
    counts, troubles = _recent_counts(lake, rows, history_h)
    truth = lake.truth.loc[rows["customer_token"].astype(str).to_numpy()]
    rate = datagen_rate() * truth["activity"].to_numpy()[:, None, None]
    support = truth["support"].to_numpy()[:, None, None]
    base = datagen.EVENT_TYPE_SHARE[[datagen.EVENT_TYPES.index(t) for t in ("support_contact", "error")]].sum()
    ages = np.arange(history_h) + 0.5  # hours before the cutoff, middles of the hourly bins
    offsets = np.arange(ORACLE_STEP_H / 2, lake.hours, ORACLE_STEP_H)  # cancellation time minus cutoff, on a grid
    closeness = np.exp(-(offsets[None, :, None] + ages[None, None, :]) / datagen.DECAY_TAU_H)
    expected = rate * (datagen.DECAY_FLOOR + (1 - datagen.DECAY_FLOOR) * (1 - closeness))
    share = np.minimum(0.6, 0.012 * support + 0.3 * closeness)
    log_cancel = _log_likelihood(counts[:, None, :], troubles[:, None, :], expected, share + (1 - share) * base)
    stay_share = np.minimum(0.6, 0.012 * support[:, :, 0])
    log_stay = _log_likelihood(counts, troubles, rate[:, :, 0], stay_share + (1 - stay_share) * base)
    probability = truth["churn_probability"].to_numpy()
    inside_span = (_hours(rows["cutoff"])[:, None] + offsets[None, :]) < lake.hours
    joint = log_cancel + np.log(probability[:, None] * ORACLE_STEP_H / lake.hours) + np.where(inside_span, 0.0, -np.inf)
    joint_stay = log_stay + np.log1p(-probability)
    top = np.maximum(joint.max(axis=1), joint_stay)
    weight, stay = np.exp(joint - top[:, None]), np.exp(joint_stay - top)
    return weight[:, offsets <= horizon_h].sum(axis=1) / (weight.sum(axis=1) + stay)


def datagen_rate() -> float:
    """The generator's default events per customer-hour (its ``events_per_customer_hour``)."""
    return float(inspect.signature(datagen.generate).parameters["events_per_customer_hour"].default)
