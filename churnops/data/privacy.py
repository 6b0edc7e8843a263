"""PII handling: the per-column policy and the keyed tokenizer, shared by ingest and serving.

A token is ``"tok_"`` followed by the first 32 hex characters (128 bits) of
HMAC-SHA256(key, UTF-8 value). The same key and value always give the same token, so tokenized
tables still join on ``customer_token``; without the key a token cannot be reversed or recomputed
from a guessed id. Changing the key changes every token (see ``docs/security.md``).
"""

from __future__ import annotations

import hmac
from typing import NoReturn

import numpy as np
import pandas as pd

from churnops.data.schema import PII_COLUMNS
from churnops.platform.secrets import MIN_TOKENIZATION_KEY_BYTES as MIN_KEY_BYTES

TOKEN_PREFIX = "tok_"
TOKEN_HEX_CHARS = 32

# What happens to each PII column of each raw source: "tokenize" or "drop"; other columns are kept.
# The contract schema (churnops/data/schema.py, docs/data-contract.md) is where the policy is declared.
PII_POLICY: dict[str, dict[str, str]] = PII_COLUMNS


def tokenized_column(column: str) -> str:
    """The name a tokenized column gets: ``customer_id`` -> ``customer_token``."""
    return column.removesuffix("_id") + "_token"


def normalise_id(value: str) -> str:
    """An identifier as the contract publishes it (surrounding whitespace stripped); every token is of this."""
    return value.strip()


class Tokenizer:
    """Keyed, deterministic pseudonymisation of identifiers. The key is never shown."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError(f"tokenization key must be bytes, not {type(key).__name__}")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"tokenization key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return f"Tokenizer(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Tokenizer holds a secret key and cannot be pickled; build one where it is used")

    @property
    def key_id(self) -> str:
        """A stable, non-secret name for the key (record it with tokenized data to know which key made it)."""
        return "key_" + hmac.digest(self._key, b"churnops key id", "sha256").hex()[:16]

    def token(self, value: str) -> str:
        """The token for one identifier, normalised first (:func:`normalise_id`): ``" CUST-1 "`` is ``"CUST-1"``."""
        if not isinstance(value, str):
            raise TypeError(f"only strings are tokenized, not {type(value).__name__}")
        digest = hmac.digest(self._key, normalise_id(value).encode("utf-8"), "sha256")
        return TOKEN_PREFIX + digest.hex()[:TOKEN_HEX_CHARS]

    def digest(self, label: str, value: str, hex_chars: int = 12) -> str:
        """A keyed digest of ``value`` for another use than identifiers (such as column names).

        Its key is derived from the tokenization key and ``label`` (HMAC of the label under the
        key), so a digest never equals a prefix of the token of the same text.
        """
        derived = hmac.digest(self._key, f"churnops digest key: {label}".encode("utf-8"), "sha256")
        return hmac.digest(derived, value.encode("utf-8"), "sha256").hex()[:hex_chars]

    def tokens(self, values: pd.Series) -> pd.Series:
        """Tokenize a column: each distinct value is hashed once; nulls stay null; index and name are kept.

        Raises :class:`TypeError` if a non-null value is not a string (an id read as a number has
        already lost its exact text, e.g. leading zeros).
        """
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        unique_tokens = np.array([self.token(value) for value in uniques] + [None], dtype=object)
        # code -1 (null) picks the trailing None.
        tokens = unique_tokens[np.where(codes < 0, len(uniques), codes)]
        dtype = values.dtype if isinstance(values.dtype, pd.StringDtype) else object
        return pd.Series(tokens, index=values.index, name=values.name, dtype=dtype)


def apply_pii_policy(df: pd.DataFrame, kind: str, tokenizer: Tokenizer) -> pd.DataFrame:
    """Return a copy of ``df`` with ``kind``'s policy applied: tokenize, rename, drop.

    Columns the policy names but ``df`` lacks are ignored. Raises :class:`ValueError` for an
    unknown ``kind`` or when a tokenized column's new name is already taken.
    """
    if kind not in PII_POLICY:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(PII_POLICY)}")
    policy = PII_POLICY[kind]
    dropped = [column for column, action in policy.items() if action == "drop" and column in df.columns]
    tokenized = [column for column, action in policy.items() if action == "tokenize" and column in df.columns]
    clashes = [tokenized_column(column) for column in tokenized if tokenized_column(column) in df.columns]
    if clashes:
        raise ValueError(f"{kind} data already has column(s) {clashes}; refusing to overwrite them with tokens")
    result = df.drop(columns=dropped)
    for column in tokenized:
        result[column] = tokenizer.tokens(result[column])
    return result.rename(columns={column: tokenized_column(column) for column in tokenized})
