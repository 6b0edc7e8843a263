"""Synthetic raw data: hourly producer drops that follow ``docs/data-contract.md``.

:func:`generate` simulates a customer base over a span of hours and renders, for every hour, two
event objects (``web`` clickstream and ``app`` logs, JSON Lines + gzip) and one billing export
(CSV). Customers have a latent churn probability; churners cancel at a time inside the span and
their activity fades before it. Optional anomalies (bad columns, bad values, broken files, late
files) are injected into a fraction of the objects and listed in :attr:`GeneratedData.anomalies`.

Everything is drawn from numpy generators seeded by ``seed`` (gzip headers carry ``mtime=0``), so
the same arguments give byte-identical objects. The anomalies use their own generator: the objects
an anomaly does not touch are the same bytes whatever ``anomaly_rate`` is.

:func:`upload` writes the objects that have arrived by a given hour to a bucket.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from google.cloud import storage

from churnops.data import naming, schema
from churnops.local import rawformat
from churnops.platform.storage import ObjectRef, write_object

log = logging.getLogger(__name__)

ANOMALY_KINDS: tuple[str, ...] = (
    "missing_optional_column",
    "missing_required_column",
    "extra_column",
    "wrong_type",  # values of the wrong type that can be coerced ("12.5" as a string)
    "uncoercible_value",  # values that cannot be coerced ("abc" for duration_s / monthly_charges)
    "malformed_row",  # a JSON line that is not valid JSON / a CSV row with the wrong field count
    "duplicate_events",  # rows repeated within the object and rows re-sent from an earlier hour
    "out_of_range",  # negative amounts/durations/charges, timestamps in the future or outside the hour
    "corrupt_file",  # a .jsonl.gz that is not valid gzip (truncated)
    "empty_file",  # zero bytes
    "late_file",  # the object for hour h arrives at h+1 or h+2
)

# The contract's vocabulary and columns (in the contract's order), from the contract itself.
EVENT_TYPES = schema.EVENT_TYPES
EVENT_COLUMNS: tuple[str, ...] = tuple(schema.CONTRACT_COLUMNS[schema.EVENTS])
EVENT_REQUIRED: tuple[str, ...] = tuple(schema.REQUIRED_COLUMNS[schema.EVENTS])
SUBSCRIPTION_COLUMNS: tuple[str, ...] = tuple(schema.CONTRACT_COLUMNS[schema.SUBSCRIPTIONS])
SUBSCRIPTION_REQUIRED: tuple[str, ...] = tuple(schema.REQUIRED_COLUMNS[schema.SUBSCRIPTIONS])
PRODUCERS: tuple[str, ...] = ("web", "app")
PLANS = schema.PLANS
CONTRACTS = schema.CONTRACTS
PAYMENT_METHODS = schema.PAYMENT_METHODS
MAX_CUSTOMERS = 9_999_999  # customer ids are CUST-NNNNNNN

# The churn model: logit contributions, calibrated so that CHURN_RATE of customers churn in the span.
CHURN_RATE = 0.27
PLAN_SHARE = np.array([0.45, 0.35, 0.20])
PLAN_PRICE = np.array([19.99, 49.99, 89.99])
PLAN_EFFECT = np.array([0.25, 0.0, -0.3])
CONTRACT_SHARE = np.array([0.55, 0.25, 0.20])
CONTRACT_EFFECT = np.array([1.5, 0.0, -1.0])
PAYMENT_SHARE = np.array([0.40, 0.25, 0.20, 0.15])
PAYMENT_EFFECT = np.array([0.0, 0.15, 0.55, 0.8])
CHARGES_EFFECT_PER_UNIT = 0.012  # per currency unit above 45
SUPPORT_EFFECT = 0.6  # per unit of support propensity above its mean (1)
TENURE_EFFECT = -0.5  # times log1p(tenure in half-years)
ACTIVITY_EFFECT = -0.3  # times log(activity level)
CHURN_NOISE_SD = 0.8

# Activity: rate multiplier FLOOR + (1 - FLOOR) * (1 - exp(-(T - t) / TAU)) before a cancellation at T.
DECAY_TAU_H = 8.0
DECAY_FLOOR = 0.15
QUIET_ENTER, QUIET_EXIT, QUIET_RATE = 0.05, 0.35, 0.2  # random quiet periods (per-hour Markov chain)
PLAN_CHANGE_RATE = 0.003  # per customer-hour; more often (and downwards) close to a cancellation

EVENT_TYPE_SHARE = np.array([0.38, 0.08, 0.06, 0.12, 0.08, 0.04, 0.01, 0.21, 0.02])
MEDIAN_DURATION_S = np.array([35.0, 3.0, 1.0, 12.0, 5.0, 40.0, 300.0, 600.0, 0.5])
PAGE_VIEW_PAGES = np.array(["/home", "/plans", "/account", "/browse", "/watch", "/offers", "/help"], dtype=object)
ERROR_PAGES = np.array(["/checkout", "/watch", "/account", "/login"], dtype=object)
PAGE_BY_TYPE = np.array(
    ["/home", "/login", "/logout", "/search", "/cart", "/checkout", "/help/contact", "/watch", "/account"],
    dtype=object,
)
_PAGE_VIEW, _LOGIN, _PURCHASE = (EVENT_TYPES.index(t) for t in ("page_view", "login", "purchase"))
_SUPPORT, _ERROR = (EVENT_TYPES.index(t) for t in ("support_contact", "error"))

FIRST_NAMES = np.array(
    [
        "James",
        "Mary",
        "Robert",
        "Patricia",
        "John",
        "Jennifer",
        "Michael",
        "Linda",
        "David",
        "Elizabeth",
        "Sofia",
        "Lukas",
        "Emma",
        "Noah",
        "Olivia",
        "Liam",
        "Ana",
        "Mateo",
        "Chloe",
        "Hugo",
        "Priya",
        "Arjun",
        "Yuki",
        "Lea",
    ],
    dtype=object,
)
LAST_NAMES = np.array(
    [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Martin",
        "Muller",
        "Schmidt",
        "Rossi",
        "Bianchi",
        "Dubois",
        "Moreau",
        "Jansen",
        "de Vries",
        "Lopez",
        "Fernandez",
        "Taylor",
        "Wilson",
        "Patel",
        "Sharma",
        "Nguyen",
    ],
    dtype=object,
)
EMAIL_DOMAINS = np.array(["example.com", "example.org", "example.net", "mail.example.com"], dtype=object)
COUNTRIES = np.array(["US", "GB", "DE", "FR", "CA", "NL", "ES", "IT", "AU", "IN"], dtype=object)
COUNTRY_SHARE = np.array([0.40, 0.12, 0.10, 0.08, 0.08, 0.05, 0.05, 0.05, 0.04, 0.03])
PHONE_PREFIX = np.array(
    ["+1-555", "+44-20", "+49-30", "+33-1", "+1-555", "+31-20", "+34-91", "+39-06", "+61-2", "+91-22"], dtype=object
)
WEB_USER_AGENTS = np.array(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
        "Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Edg/126.0",
    ],
    dtype=object,
)
IOS_USER_AGENTS = np.array(
    [f"ChurnApp/{app} (iOS {os}; iPhone)" for app in ("4.2.0", "4.3.1") for os in ("16.7", "17.4", "17.5")],
    dtype=object,
)
ANDROID_USER_AGENTS = np.array(
    [f"ChurnApp/{app} (Android {os}; Mobile)" for app in ("4.2.0", "4.3.1") for os in ("12", "13", "14")],
    dtype=object,
)

GZIP_LEVEL = 3
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_JUNK_NUMBERS = ("abc", "twelve", "12,5 EUR", "1.2.3", "--")


@dataclass(frozen=True)
class RawObject:
    """One object as a producer drops it in the raw bucket."""

    name: str  # e.g. "activity/events/dt=2026-11-01/hr=05/web-000.jsonl.gz"
    data: bytes
    content_type: str  # "application/gzip" or "text/csv"
    hour: datetime  # the dt/hr in the name (UTC, on the hour)
    arrival: datetime  # the hour at which it lands in the bucket (== hour unless late)


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: which object, how many rows it touches (0 for whole-object kinds)."""

    kind: str
    object_name: str
    rows: int
    detail: str


@dataclass
class GeneratedData:
    """The objects to upload, the anomalies injected into them, and the per-customer ground truth."""

    objects: list[RawObject]
    anomalies: list[Anomaly]
    customers: pd.DataFrame  # never uploaded; see generate()


@dataclass(frozen=True)
class Drift:
    """A behaviour shift from hour ``start_h`` on: a ``share`` of customers is ``activity_factor`` times as active.

    Used to show drift monitoring at work: the shifted customers' activity features fall while
    their subscriptions look the same. Customers are chosen from the seed, independently of the rest
    of the simulation, so the unshifted part of the data is unchanged.
    """

    start_h: int
    share: float = 0.5
    activity_factor: float = 0.2

    def __post_init__(self) -> None:
        if self.start_h < 0 or not 0 < self.share <= 1 or not 0 <= self.activity_factor:
            raise ValueError(f"drift needs start_h >= 0, 0 < share <= 1, activity_factor >= 0; got {self}")


@dataclass
class _Pii:
    """Per-customer identifying values (object arrays of str)."""

    customer_id: np.ndarray
    name: np.ndarray
    email: np.ndarray
    phone: np.ndarray
    ip_address: np.ndarray
    web_user_agent: np.ndarray
    app_user_agent: np.ndarray
    mobile_os: np.ndarray
    country: np.ndarray


@dataclass
class _Traits:
    """Per-customer subscription and behaviour (numpy arrays; plan and charges change over time)."""

    plan: np.ndarray
    contract: np.ndarray
    payment: np.ndarray
    price_factor: np.ndarray
    charges: np.ndarray
    signup_day: np.ndarray  # days since the epoch
    activity: np.ndarray  # mean events multiplier, mean 1
    support: np.ndarray  # support-contact propensity, mean 1
    app_share: np.ndarray  # share of events logged by the app (vs the web)
    churn_probability: np.ndarray
    churn_ms: np.ndarray  # cancellation time in ms after start (inf when the customer stays)


@dataclass
class _Draft:
    """A clean object before rendering."""

    name: str
    source: str  # "events" or "subscriptions"
    producer: str
    hour: datetime
    hour_index: int
    frame: pd.DataFrame

    @property
    def is_events(self) -> bool:
        """True for the .jsonl.gz event objects."""
        return self.source == "events"


@dataclass
class _Target:
    """An object about to receive an anomaly, with the earlier clean object duplicates may come from."""

    draft: _Draft
    earlier: _Draft | None


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def generate(
    hours: int,
    customers: int,
    start: datetime | None = None,
    seed: int = 0,
    anomaly_rate: float = 0.0,
    events_per_customer_hour: float = 1.5,
    drift: Drift | None = None,
) -> GeneratedData:
    """Simulate ``customers`` over ``hours`` hours from ``start`` and render the raw objects.

    ``start`` (timezone-aware) is floored to the hour; by default it is the current UTC hour minus
    ``hours``, so every generated hour is in the past. ``anomaly_rate`` is the fraction of objects
    that carry one anomaly; when it is above 0 it is raised as needed so that every kind in
    :data:`ANOMALY_KINDS` appears at least once (given enough suitable objects).

    ``GeneratedData.customers`` is the ground truth at ``start``: ``customer_id``, ``plan``,
    ``contract``, ``payment_method``, ``monthly_charges``, ``signup_date``, ``country``,
    ``churn_probability``, ``churn_time`` (UTC, NaT for customers who stay), and the latent
    ``activity`` (event-rate multiplier, mean 1) and ``support`` (support-contact propensity).

    ``drift`` shifts behaviour from one hour on (see :class:`Drift`).
    """
    _check_arguments(hours, customers, seed, anomaly_rate, events_per_customer_hour)
    if start is None:
        start = _floor_hour(datetime.now(timezone.utc)) - timedelta(hours=hours)
    elif start.tzinfo is None:
        raise ValueError("start must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
    start = _floor_hour(start.astimezone(timezone.utc))
    start_ms = int(start.timestamp()) * 1000

    population_rng, activity_rng, anomaly_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    pii, traits = _make_population(population_rng, customers, start_ms, hours)
    truth = _ground_truth(pii, traits, start_ms)

    shifted = None
    if drift is not None:
        shifted = np.random.default_rng([seed, 1]).random(customers) < drift.share
    drafts = _simulate(activity_rng, pii, traits, start, hours, events_per_customer_hour, drift, shifted)
    objects, anomalies = _render_all(anomaly_rng, drafts, hours, anomaly_rate)
    log.info(
        "generated %d raw objects (%d with anomalies) for %d customers over %d hours",
        len(objects),
        len(anomalies),
        customers,
        hours,
    )
    return GeneratedData(objects=objects, anomalies=anomalies, customers=truth)


def upload(
    client: storage.Client, bucket: str, objects: Iterable[RawObject], until: datetime | None = None
) -> list[ObjectRef]:
    """Write the objects whose ``arrival`` is at or before ``until`` (all when None) to ``bucket``.

    Uploading an object again creates a new generation; to replay arrivals hour by hour, upload
    the groups of :func:`objects_by_arrival` one at a time.
    """
    if until is not None and until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    refs = [
        write_object(client, bucket, obj.name, obj.data, obj.content_type)
        for obj in objects
        if until is None or obj.arrival <= until
    ]
    log.info("uploaded %d raw objects to bucket %s", len(refs), bucket)
    return refs


def objects_by_arrival(objects: Iterable[RawObject]) -> dict[datetime, list[RawObject]]:
    """Objects grouped by arrival hour, hours ascending, names ascending within an hour."""
    grouped: dict[datetime, list[RawObject]] = {}
    for obj in sorted(objects, key=lambda o: (o.arrival, o.name)):
        grouped.setdefault(obj.arrival, []).append(obj)
    return grouped


# ---------------------------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------------------------


def _check_arguments(hours: int, customers: int, seed: int, anomaly_rate: float, rate: float) -> None:
    if not isinstance(hours, (int, np.integer)) or hours < 1:
        raise ValueError(f"hours must be a positive integer, got {hours!r}")
    if not isinstance(customers, (int, np.integer)) or not 1 <= customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be an integer between 1 and {MAX_CUSTOMERS}, got {customers!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= anomaly_rate <= 1.0:
        raise ValueError(f"anomaly_rate must be between 0 and 1, got {anomaly_rate!r}")
    if not (np.isfinite(rate) and rate >= 0):
        raise ValueError(f"events_per_customer_hour must be a finite number >= 0, got {rate!r}")


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return result


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """The intercept b for which mean(sigmoid(score + b)) == rate (bisection; the mean grows with b)."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if _sigmoid(score + mid).mean() < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _make_population(rng: np.random.Generator, n: int, start_ms: int, hours: int) -> tuple[_Pii, _Traits]:
    """Draw customers: subscription, behaviour, latent churn probability and cancellation time, PII."""
    plan = rng.choice(len(PLANS), size=n, p=PLAN_SHARE)
    contract = rng.choice(len(CONTRACTS), size=n, p=CONTRACT_SHARE)
    payment = rng.choice(len(PAYMENT_METHODS), size=n, p=PAYMENT_SHARE)
    price_factor = np.clip(rng.normal(1.0, 0.08, n), 0.7, 1.3)
    charges = np.round(PLAN_PRICE[plan] * price_factor, 2)
    tenure_days = np.minimum(rng.gamma(1.3, 420.0, n), 3000.0).astype(np.int64)
    activity = rng.lognormal(-0.125, 0.5, n)  # mean exp(-0.125 + 0.5**2 / 2) = 1
    support = rng.gamma(2.0, 0.5, n)
    app_share = rng.beta(2.0, 2.0, n)

    score = (
        CONTRACT_EFFECT[contract]
        + PLAN_EFFECT[plan]
        + PAYMENT_EFFECT[payment]
        + CHARGES_EFFECT_PER_UNIT * (charges - 45.0)
        + SUPPORT_EFFECT * (support - 1.0)
        + TENURE_EFFECT * np.log1p(tenure_days / 182.6)
        + ACTIVITY_EFFECT * np.log(activity)
        + rng.normal(0.0, CHURN_NOISE_SD, n)
    )
    churn_probability = _sigmoid(score + _intercept_for_rate(score, CHURN_RATE))
    churns = rng.random(n) < churn_probability
    churn_ms = np.where(churns, np.floor(rng.random(n) * hours * _HOUR_MS), np.inf)

    traits = _Traits(
        plan=plan,
        contract=contract,
        payment=payment,
        price_factor=price_factor,
        charges=charges,
        signup_day=start_ms // _DAY_MS - tenure_days,
        activity=activity,
        support=support,
        app_share=app_share,
        churn_probability=churn_probability,
        churn_ms=churn_ms,
    )
    return _make_pii(rng, n), traits


def _make_pii(rng: np.random.Generator, n: int) -> _Pii:
    """Names, e-mails, phones, IPs (10% IPv6), user agents and countries."""
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE)
    email_number = rng.integers(1, 1000, n)
    domain = EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), n)]
    phone_mid, phone_end = rng.integers(100, 1000, n), rng.integers(0, 10000, n)
    ipv6 = rng.random(n) < 0.1
    octets = rng.integers(1, 255, (n, 4))
    octets[:, 0] = rng.choice(np.setdiff1d(np.arange(11, 224), [127]), n)
    groups = rng.integers(0, 65536, (n, 4))
    android = rng.random(n) < 0.55
    web_ua = WEB_USER_AGENTS[rng.integers(0, len(WEB_USER_AGENTS), n)]
    ios_ua = IOS_USER_AGENTS[rng.integers(0, len(IOS_USER_AGENTS), n)]
    android_ua = ANDROID_USER_AGENTS[rng.integers(0, len(ANDROID_USER_AGENTS), n)]

    ips = [
        f"2001:db8:{g[0]:x}:{g[1]:x}::{g[2]:x}:{g[3]:x}" if v6 else f"{o[0]}.{o[1]}.{o[2]}.{o[3]}"
        for v6, o, g in zip(ipv6.tolist(), octets.tolist(), groups.tolist())
    ]
    return _Pii(
        customer_id=np.array([f"CUST-{i:07d}" for i in range(1, n + 1)], dtype=object),
        name=np.array([f"{f} {s}" for f, s in zip(first, last)], dtype=object),
        email=np.array(
            [f"{f}.{s.replace(' ', '')}{k}@{d}".lower() for f, s, k, d in zip(first, last, email_number, domain)],
            dtype=object,
        ),
        phone=np.array(
            [f"{p}-{a:03d}-{b:04d}" for p, a, b in zip(PHONE_PREFIX[country], phone_mid, phone_end)], dtype=object
        ),
        ip_address=np.array(ips, dtype=object),
        web_user_agent=web_ua,
        app_user_agent=np.where(android, android_ua, ios_ua),
        mobile_os=np.where(android, "android", "ios").astype(object),
        country=COUNTRIES[country],
    )


def _ground_truth(pii: _Pii, traits: _Traits, start_ms: int) -> pd.DataFrame:
    """The per-customer truth at the start of the span (taken before any plan change)."""
    # Whole milliseconds as datetime64, NaT for customers who stay. (pd.to_datetime of a float array
    # with NaN rounds uninitialised memory in the NaN slots under errstate(over="raise"): it fails at random.)
    stays = ~np.isfinite(traits.churn_ms)
    churn_ms = (start_ms + np.where(stays, 0.0, traits.churn_ms)).astype(np.int64).astype("datetime64[ms]")
    churn_ms[stays] = np.datetime64("NaT")
    churn_time = pd.to_datetime(churn_ms.astype("datetime64[ns]"), utc=True)
    return pd.DataFrame(
        {
            "customer_id": pii.customer_id,
            "plan": np.array(PLANS, dtype=object)[traits.plan],
            "contract": np.array(CONTRACTS, dtype=object)[traits.contract],
            "payment_method": np.array(PAYMENT_METHODS, dtype=object)[traits.payment],
            "monthly_charges": traits.charges.copy(),
            "signup_date": pd.to_datetime(traits.signup_day, unit="D"),
            "country": pii.country,
            "churn_probability": traits.churn_probability,
            "churn_time": churn_time,
            "activity": traits.activity,
            "support": traits.support,
        }
    )


# ---------------------------------------------------------------------------------------------
# Hourly data
# ---------------------------------------------------------------------------------------------


def _simulate(
    rng: np.random.Generator,
    pii: _Pii,
    traits: _Traits,
    start: datetime,
    hours: int,
    rate: float,
    drift: Drift | None = None,
    shifted: np.ndarray | None = None,
) -> list[_Draft]:
    """The clean objects of every hour: web events, app events, billing export."""
    start_ms = int(start.timestamp()) * 1000
    drafts: list[_Draft] = []
    quiet = rng.random(len(pii.customer_id)) < QUIET_ENTER / (QUIET_ENTER + QUIET_EXIT)
    for h in range(hours):
        hour = start + timedelta(hours=h)
        hour_rate: float | np.ndarray = rate
        if drift is not None and shifted is not None and h >= drift.start_h:
            hour_rate = rate * np.where(shifted, drift.activity_factor, 1.0)
        frames = _hour_events(rng, pii, traits, start_ms + h * _HOUR_MS, h, quiet, hour_rate)
        for producer in PRODUCERS:
            drafts.append(_Draft(_event_object_name(hour, producer), "events", producer, hour, h, frames[producer]))
        billing = _billing_frame(rng, pii, traits, start_ms, h)
        drafts.append(_Draft(_billing_object_name(hour), "subscriptions", "billing", hour, h, billing))
        stay = rng.random(len(quiet))
        quiet = np.where(quiet, stay >= QUIET_EXIT, stay < QUIET_ENTER)
    return drafts


def _event_object_name(hour: datetime, producer: str) -> str:
    return f"activity/events/{naming.hour_partition(hour)}/{producer}-000.jsonl.gz"


def _billing_object_name(hour: datetime) -> str:
    return f"activity/subscriptions/{naming.hour_partition(hour)}/billing-000.csv"


def _closeness(churn_ms: np.ndarray, at_ms: np.ndarray | float) -> np.ndarray:
    """exp(-(T - t) / tau): 1 at the cancellation, 0 for customers who stay."""
    hours_left = np.maximum(churn_ms - at_ms, 0.0) / _HOUR_MS
    return np.exp(-hours_left / DECAY_TAU_H)


def _iso_ms(epoch_ms: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC strings with milliseconds ("2026-11-01T05:12:33.123Z") as an object array."""
    stamps = np.asarray(epoch_ms, dtype=np.int64).astype("datetime64[ms]")
    return np.datetime_as_string(stamps, unit="ms", timezone="UTC").astype(object)


def _hex_ids(rng: np.random.Generator, n: int, uuid4: bool) -> np.ndarray:
    """Random ids: UUID version 4 strings, or 16 hex characters (session ids)."""
    width = 16 if uuid4 else 8
    raw = rng.integers(0, 256, (n, width), dtype=np.uint8)
    if not uuid4:
        return np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype="S16").astype("U16").astype(object)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    chars = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype="S1").reshape(n, 32)
    out = np.full((n, 36), b"-", dtype="S1")
    for (src_lo, src_hi), dst_lo in zip(((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)), (0, 9, 14, 19, 24)):
        out[:, dst_lo : dst_lo + src_hi - src_lo] = chars[:, src_lo:src_hi]
    return out.view("S36").ravel().astype("U36").astype(object)


def _event_rows(
    rng: np.random.Generator, traits: _Traits, h: int, quiet: np.ndarray, rate: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who acts in hour ``h``: per-event customer index and ms offset, per-customer closeness and counts."""
    hour_ms = h * _HOUR_MS
    subscribed_ms = np.clip(traits.churn_ms - hour_ms, 0, _HOUR_MS)  # part of the hour before cancellation
    closeness = _closeness(traits.churn_ms, hour_ms + subscribed_ms / 2)
    decay = DECAY_FLOOR + (1 - DECAY_FLOOR) * (1 - closeness)
    expected = rate * traits.activity * np.where(quiet, QUIET_RATE, 1.0) * decay * subscribed_ms / _HOUR_MS
    counts = rng.poisson(expected)
    who = np.repeat(np.arange(counts.size), counts)
    offset_ms = np.floor(rng.random(who.size) * subscribed_ms[who]).astype(np.int64)
    return who, offset_ms, closeness, counts


def _event_kinds(rng: np.random.Generator, traits: _Traits, who: np.ndarray, closeness: np.ndarray) -> np.ndarray:
    """Event type index per event; support contacts and errors grow with support need and nearing churn."""
    kind = rng.choice(len(EVENT_TYPES), size=who.size, p=EVENT_TYPE_SHARE)
    trouble = rng.random(who.size) < np.minimum(0.6, 0.012 * traits.support[who] + 0.3 * closeness[who])
    kind[trouble] = np.where(rng.random(int(trouble.sum())) < 0.55, _SUPPORT, _ERROR)
    return kind


def _pages(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    page: np.ndarray = PAGE_BY_TYPE[kind]  # a copy: fancy indexing
    viewing, failing = kind == _PAGE_VIEW, kind == _ERROR
    page[viewing] = PAGE_VIEW_PAGES[rng.integers(0, len(PAGE_VIEW_PAGES), int(viewing.sum()))]
    page[failing] = ERROR_PAGES[rng.integers(0, len(ERROR_PAGES), int(failing.sum()))]
    return page


def _session_ids(rng: np.random.Generator, who: np.ndarray, from_app: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """1-3 sessions per customer, producer and hour (more events, more sessions)."""
    sessions = 1 + (counts >= 6) + (counts >= 15)
    key = (who * 2 + from_app) * 3 + np.floor(rng.random(who.size) * sessions[who]).astype(np.int64)
    unique_keys, session_index = np.unique(key, return_inverse=True)
    return _hex_ids(rng, unique_keys.size, uuid4=False)[session_index]


def _hour_events(
    rng: np.random.Generator,
    pii: _Pii,
    traits: _Traits,
    hour_start_ms: int,
    h: int,
    quiet: np.ndarray,
    rate: float | np.ndarray,
) -> dict[str, pd.DataFrame]:
    """The events of hour ``h``, one frame per producer, each sorted by event time."""
    who, offset_ms, closeness, counts = _event_rows(rng, traits, h, quiet, rate)
    kind = _event_kinds(rng, traits, who, closeness)
    from_app = rng.random(who.size) < traits.app_share[who]
    duration = np.round(MEDIAN_DURATION_S[kind] * np.exp(rng.normal(0.0, 0.6, who.size)), 3)
    amount = np.where(kind == _PURCHASE, np.round(np.exp(rng.normal(np.log(30.0), 0.6, who.size)), 2), np.nan)
    page = _pages(rng, kind)
    session_id = _session_ids(rng, who, from_app, counts)
    email = np.full(who.size, None, dtype=object)
    shows_email = from_app & (kind == _LOGIN) & (rng.random(who.size) < 0.6)
    email[shows_email] = pii.email[who[shows_email]]
    columns = {
        "event_id": _hex_ids(rng, who.size, uuid4=True),
        "customer_id": pii.customer_id[who],
        "event_time": _iso_ms(hour_start_ms + offset_ms),
        "event_type": np.array(EVENT_TYPES, dtype=object)[kind],
        "session_id": session_id,
        "duration_s": duration,
        "amount": amount,
        "device": np.where(from_app, pii.mobile_os[who], "web").astype(object),
        "page": page,
        "ip_address": pii.ip_address[who],
        "user_agent": np.where(from_app, pii.app_user_agent[who], pii.web_user_agent[who]),
        "email": email,
    }
    order = np.argsort(offset_ms, kind="stable")
    frames = {}
    for producer, is_app in (("web", False), ("app", True)):
        rows = order[from_app[order] == is_app]
        frames[producer] = pd.DataFrame({name: values[rows] for name, values in columns.items()})
    return frames


def _billing_frame(rng: np.random.Generator, pii: _Pii, traits: _Traits, start_ms: int, h: int) -> pd.DataFrame:
    """Hour ``h``'s billing export: every customer at h == 0, then plan changes and cancellations."""
    hour_ms = h * _HOUR_MS
    cancelling = (traits.churn_ms >= hour_ms) & (traits.churn_ms < hour_ms + _HOUR_MS)
    if h == 0:
        changed = np.ones(cancelling.size, dtype=bool)
    else:
        subscribed = traits.churn_ms >= hour_ms
        closeness = _closeness(traits.churn_ms, hour_ms + _HOUR_MS / 2)
        switching = subscribed & (rng.random(cancelling.size) < PLAN_CHANGE_RATE + 0.03 * closeness)
        who = np.flatnonzero(switching)
        step = np.where(rng.random(who.size) < 0.5 + 0.5 * closeness[who], -1, 1)
        new_plan = traits.plan[who] + step
        new_plan = np.where((new_plan < 0) | (new_plan >= len(PLANS)), traits.plan[who] - step, new_plan)
        traits.plan[who] = new_plan
        traits.charges[who] = np.round(PLAN_PRICE[new_plan] * traits.price_factor[who], 2)
        changed = switching | cancelling

    who = np.flatnonzero(changed)
    updated_ms = hour_ms + np.floor(rng.random(who.size) * _HOUR_MS)
    updated_ms = np.where(cancelling[who], traits.churn_ms[who], updated_ms)
    order = np.argsort(updated_ms, kind="stable")
    who, updated_ms = who[order], updated_ms[order]
    stopped = cancelling[who]
    cancel_date = np.full(who.size, None, dtype=object)
    cancel_date[stopped] = _iso_ms(start_ms + traits.churn_ms[who[stopped]])
    tenure_days = np.maximum((start_ms + hour_ms) // _DAY_MS - traits.signup_day[who], 0)
    stamp = f"{datetime.fromtimestamp((start_ms + hour_ms) / 1000, timezone.utc):%Y%m%d%H}"
    return pd.DataFrame(
        {
            "record_id": np.array([f"BR-{stamp}-{i:07d}" for i in range(who.size)], dtype=object),
            "customer_id": pii.customer_id[who],
            "name": pii.name[who],
            "email": pii.email[who],
            "phone": pii.phone[who],
            "plan": np.array(PLANS, dtype=object)[traits.plan[who]],
            "contract": np.array(CONTRACTS, dtype=object)[traits.contract[who]],
            "payment_method": np.array(PAYMENT_METHODS, dtype=object)[traits.payment[who]],
            "monthly_charges": traits.charges[who],
            "total_charges": np.round(traits.charges[who] * tenure_days / 30.44, 2),
            "signup_date": np.datetime_as_string(traits.signup_day[who].astype("datetime64[D]")).astype(object),
            "status": np.where(stopped, schema.STATUSES[1], schema.STATUSES[0]).astype(object),
            "cancel_date": cancel_date,
            "updated_at": _iso_ms(start_ms + updated_ms),
            "country": pii.country[who],
        }
    )


# ---------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------


def _eligible(kind: str, draft: _Draft, hours: int) -> bool:
    """Whether ``kind`` makes sense on this object."""
    rows = len(draft.frame)
    if kind == "late_file":
        return draft.hour_index <= hours - 2  # arrives by the last generated hour
    if kind == "empty_file":
        return True
    if kind == "corrupt_file":
        return draft.is_events
    if kind == "wrong_type":
        return draft.is_events and rows >= 1
    if kind == "duplicate_events":
        return draft.is_events and rows >= 1 and (draft.hour_index > 0 or hours == 1)
    return rows >= 1


def _plan_anomalies(rng: np.random.Generator, drafts: list[_Draft], hours: int, rate: float) -> dict[int, str]:
    """Which object (index) gets which anomaly: every kind once, then random kinds up to the rate."""
    if rate <= 0:
        return {}
    plan: dict[int, str] = {}
    eligible = {kind: [i for i, d in enumerate(drafts) if _eligible(kind, d, hours)] for kind in ANOMALY_KINDS}
    for kind in sorted(ANOMALY_KINDS, key=lambda k: len(eligible[k])):  # scarcest first
        free = [i for i in eligible[kind] if i not in plan]
        if free:
            plan[free[int(rng.integers(len(free)))]] = kind
    wanted = min(len(drafts), round(rate * len(drafts)))
    remaining = [i for i in range(len(drafts)) if i not in plan]
    if wanted > len(plan):
        for i in rng.permutation(remaining)[: wanted - len(plan)].tolist():
            kinds = [k for k in ANOMALY_KINDS if _eligible(k, drafts[i], hours)]
            plan[i] = kinds[int(rng.integers(len(kinds)))]
    return plan


def _clean_earlier(drafts: list[_Draft], plan: dict[int, str], index: int) -> _Draft | None:
    """The latest earlier object of the same producer that carries no anomaly, if any."""
    target = drafts[index]
    for i in range(index - 1, -1, -1):
        draft = drafts[i]
        if draft.producer == target.producer and draft.hour_index < target.hour_index and i not in plan:
            return draft
    return None


def _pick_rows(rng: np.random.Generator, n: int, low: float = 0.02, high: float = 0.08) -> np.ndarray:
    """Sorted positions of a random 2-8% of ``n`` rows (at least one)."""
    k = int(np.clip(round(n * rng.uniform(low, high)), 1, n))
    return np.sort(rng.choice(n, size=k, replace=False))


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{label}: {count}" for label, count in counts.items() if count)


def _shift_iso(value: str, delta: timedelta) -> str:
    moved = datetime.fromisoformat(value) + delta
    return moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _drop_column(rng: np.random.Generator, target: _Target, required: bool) -> tuple[pd.DataFrame, int, str]:
    draft = target.draft
    names = EVENT_COLUMNS if draft.is_events else SUBSCRIPTION_COLUMNS
    required_names = EVENT_REQUIRED if draft.is_events else SUBSCRIPTION_REQUIRED
    choices = [c for c in names if (c in required_names) == required]
    column = choices[int(rng.integers(len(choices)))]
    return draft.frame.drop(columns=[column]), len(draft.frame), f"column {column} missing"


def _missing_optional(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    return _drop_column(rng, target, required=False)


def _missing_required(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    return _drop_column(rng, target, required=True)


def _extra_column(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    frame = target.draft.frame.copy()
    if target.draft.is_events:
        column, values = "experiment_group", np.array(["control", "treatment"], dtype=object)
    else:
        column, values = "sales_channel", np.array(["online", "retail", "partner"], dtype=object)
    frame[column] = values[rng.integers(0, len(values), len(frame))]
    return frame, len(frame), f"unexpected column {column}"


def _wrong_type(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    """duration_s / amount as strings that parse as numbers ("12.5", "12")."""
    frame = target.draft.frame.copy()
    duration = frame["duration_s"].to_numpy(dtype=object, copy=True)
    amount = frame["amount"].to_numpy(dtype=object, copy=True)
    counts = {"duration_s as decimal string": 0, "duration_s as integer string": 0, "amount as string": 0}
    rows = _pick_rows(rng, len(frame))
    for pos, variant in zip(rows.tolist(), rng.integers(0, 3, rows.size).tolist()):
        if variant == 2 and not pd.isna(amount[pos]):
            amount[pos] = str(amount[pos])
            counts["amount as string"] += 1
        elif variant == 1:
            duration[pos] = str(int(round(duration[pos])))
            counts["duration_s as integer string"] += 1
        else:
            duration[pos] = str(duration[pos])
            counts["duration_s as decimal string"] += 1
    frame["duration_s"], frame["amount"] = duration, amount
    return frame, sum(counts.values()), _describe(counts)


def _uncoercible(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    """Text that is no number in duration_s (events) or monthly_charges (billing)."""
    frame = target.draft.frame.copy()
    column = "duration_s" if target.draft.is_events else "monthly_charges"
    values = frame[column].to_numpy(dtype=object, copy=True)
    rows = _pick_rows(rng, len(frame))
    values[rows] = np.array(_JUNK_NUMBERS, dtype=object)[rng.integers(0, len(_JUNK_NUMBERS), rows.size)]
    frame[column] = values
    return frame, rows.size, f"{column} not a number"


def _out_of_range(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    """Negative numbers, timestamps in the future (+400 days) or 3 hours before the object's hour."""
    frame = target.draft.frame.copy()
    rows = _pick_rows(rng, len(frame))
    variants = rng.integers(0, 5 if not target.draft.is_events else 4, rows.size)
    if target.draft.is_events:
        number_a, number_b, stamp = "duration_s", "amount", "event_time"
    else:
        number_a, number_b, stamp = "monthly_charges", "total_charges", "updated_at"
    labels = (
        f"negative {number_a}",
        f"negative {number_b}",
        f"{stamp} in the future",
        f"{stamp} before the hour",
        "signup_date after updated_at",
    )
    counts = dict.fromkeys(labels, 0)
    for pos, variant in zip(rows.tolist(), variants.tolist()):
        if variant == 1 and pd.isna(frame.at[pos, number_b]):
            variant = 0  # no amount on this event: make the duration negative instead
        if variant in (0, 1):
            column = number_a if variant == 0 else number_b
            frame.at[pos, column] = -abs(float(frame.at[pos, column])) - 1.0
        elif variant in (2, 3):
            delta = timedelta(days=400) if variant == 2 else timedelta(hours=-3)
            frame.at[pos, stamp] = _shift_iso(frame.at[pos, stamp], delta)
        else:
            updated = datetime.fromisoformat(frame.at[pos, stamp])
            frame.at[pos, "signup_date"] = f"{updated + timedelta(days=30):%Y-%m-%d}"
        counts[labels[variant]] += 1
    return frame, rows.size, _describe(counts)


def _duplicates(rng: np.random.Generator, target: _Target) -> tuple[pd.DataFrame, int, str]:
    """Rows repeated within the object, plus rows re-sent from the latest clean earlier object."""
    frame = target.draft.frame
    repeated = frame.iloc[_pick_rows(rng, len(frame))]
    parts, detail = [frame, repeated], f"{len(repeated)} rows repeated within the object"
    if target.earlier is not None and len(target.earlier.frame):
        resent = target.earlier.frame.iloc[_pick_rows(rng, len(target.earlier.frame))]
        parts.append(resent)
        detail += f", {len(resent)} rows re-sent from {target.earlier.name}"
    return pd.concat(parts, ignore_index=True), sum(len(p) for p in parts[1:]), detail


_FRAME_ANOMALIES: dict[str, Callable[[np.random.Generator, _Target], tuple[pd.DataFrame, int, str]]] = {
    "missing_optional_column": _missing_optional,
    "missing_required_column": _missing_required,
    "extra_column": _extra_column,
    "wrong_type": _wrong_type,
    "uncoercible_value": _uncoercible,
    "out_of_range": _out_of_range,
    "duplicate_events": _duplicates,
}


def _malform(rng: np.random.Generator, text: bytes, events: bool) -> tuple[bytes, int, str]:
    """Cut JSON lines in half, or give CSV rows one field too many."""
    lines = text.split(b"\n")  # the last element is the empty string after the final newline
    first = 0 if events else 1  # keep the CSV header
    rows = _pick_rows(rng, len(lines) - 1 - first) + first
    for i in rows.tolist():
        lines[i] = lines[i][: len(lines[i]) // 2] if events else lines[i] + b",unexpected"
    what = "lines cut in half (invalid JSON)" if events else "rows with one field too many"
    return b"\n".join(lines), rows.size, f"{rows.size} {what}"


def _render_all(
    rng: np.random.Generator, drafts: list[_Draft], hours: int, rate: float
) -> tuple[list[RawObject], list[Anomaly]]:
    """Serialise every object, injecting the planned anomalies."""
    plan = _plan_anomalies(rng, drafts, hours, rate)
    objects: list[RawObject] = []
    anomalies: list[Anomaly] = []
    for i, draft in enumerate(drafts):
        kind = plan.get(i)
        earlier = _clean_earlier(drafts, plan, i) if kind == "duplicate_events" else None
        obj, anomaly = _render(rng, _Target(draft, earlier), kind, hours)
        objects.append(obj)
        if anomaly is not None:
            anomalies.append(anomaly)
    return objects, anomalies


def _render(
    rng: np.random.Generator, target: _Target, kind: str | None, hours: int
) -> tuple[RawObject, Anomaly | None]:
    """Serialise one object, applying ``kind`` (None for a clean object)."""
    draft = target.draft
    frame, rows, detail = draft.frame, 0, ""
    if kind in _FRAME_ANOMALIES:
        frame, rows, detail = _FRAME_ANOMALIES[kind](rng, target)
    text = rawformat.jsonl(frame) if draft.is_events else rawformat.csv_text(frame)
    if kind == "malformed_row":
        text, rows, detail = _malform(rng, text, draft.is_events)
    data = gzip.compress(text, compresslevel=GZIP_LEVEL, mtime=0) if draft.is_events else text
    arrival = draft.hour
    if kind == "corrupt_file":
        detail = f"gzip stream truncated to {len(data) // 2} of {len(data)} bytes ({len(frame)} rows unreadable)"
        data = data[: len(data) // 2]
    elif kind == "empty_file":
        data, detail = b"", f"zero bytes (the producer wrote none of its {len(frame)} rows)"
    elif kind == "late_file":
        delay = int(rng.integers(1, min(2, hours - 1 - draft.hour_index) + 1))
        arrival = draft.hour + timedelta(hours=delay)
        detail = f"arrives {delay} h after its hour, at {arrival:%Y-%m-%dT%H:00Z}"
    content_type = "application/gzip" if draft.is_events else "text/csv"
    obj = RawObject(name=draft.name, data=data, content_type=content_type, hour=draft.hour, arrival=arrival)
    anomaly = Anomaly(kind=kind, object_name=draft.name, rows=rows, detail=detail) if kind else None
    return obj, anomaly
