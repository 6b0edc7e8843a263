"""PII handling: the per-column policy and the keyed tokenizer, shared by ingest and serving.

A token is ``"tok_"`` followed by the first 32 hex characters (128 bits) of
HMAC-SHA256(key, UTF-8 value). The same key and value always give the same token, so tokenized
tables still join on ``customer_token``; without the key a token cannot be reversed or recomputed
from a guessed id.

The key has versions (oldest first). Under versions ``k1 .. kn`` a token is the chain
``T_kn(... T_k2(T_k1(id)))``: rotating to a new version re-tokenizes every token of the lake from
the token alone (``T_new(old token)``), and nobody holding only some of the versions can compute a
token from a guessed id (``docs/security.md``, "Rotating the key").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnops.data.schema import PII_COLUMNS
from churnops.errors import ConfigurationError
from churnops.platform.secrets import MIN_TOKENIZATION_KEY_BYTES as MIN_KEY_BYTES
from churnops.platform.secrets import tokenization_keys

if TYPE_CHECKING:
    from churnops.platform.settings import Settings

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


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError(f"tokenization key must be bytes, not {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"tokenization key must be at least {MIN_KEY_BYTES} bytes")
    return key


_BLOCK_BYTES = 64  # SHA-256's block
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))  # RFC 2104's ipad, as a byte translation
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))  # and opad


class _KeyedHash:
    """HMAC-SHA256 under one key (RFC 2104) with the two hash states the key gives (the key padded and xored
    with ipad, then with opad, each hashed) made once: a value's HMAC copies them. It gives what ``hmac.new(key,
    value, "sha256")`` gives; a remembering tokenizer makes 100,000 new tokens in about three quarters of the time
    it takes with copies of an ``hmac`` object (0.13 s against 0.18 s)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(padded.translate(_INNER_PAD))
        self._outer = hashlib.sha256(padded.translate(_OUTER_PAD))

    def hexdigest(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data``, in hex."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _link(keyed: _KeyedHash, text: str) -> str:
    """The token of ``text`` under one key version (one link of the chain)."""
    return TOKEN_PREFIX + keyed.hexdigest(text.encode("utf-8"))[:TOKEN_HEX_CHARS]


class Tokenizer:
    """Keyed, deterministic pseudonymisation of identifiers. The keys are never shown.

    ``key`` is the newest key version; ``earlier`` the versions before it, oldest first (empty for a
    key that was never rotated).
    """

    __slots__ = ("_key", "_earlier", "_keyed", "_memory", "_arrow_memory")

    def __init__(self, key: bytes, earlier: Sequence[bytes] = ()) -> None:
        self._key = _check_key(key)
        self._earlier = tuple(_check_key(k) for k in earlier)
        self._keyed = tuple(_KeyedHash(k) for k in (*self._earlier, self._key))
        self._memory: dict[str, str] | None = None
        self._arrow_memory: _ArrowMemory | None = None

    def remembering(self) -> Tokenizer:
        """A tokenizer of the same key versions that keeps each token it makes (:meth:`token`, :meth:`tokens`,
        :meth:`arrow_tokens`) and hashes each distinct value once; its tokens are this tokenizer's.

        What it keeps grows with the distinct values it is given (about 200 bytes each, the value and its
        token, for :meth:`token` and :meth:`tokens`; about 60 in Arrow for :meth:`arrow_tokens`), so it is made
        for one bounded job, such as one ingest run, and dropped with it.
        """
        twin = Tokenizer(self._key, self._earlier)
        twin._memory = {}  # pylint: disable=protected-access  # the same class
        twin._arrow_memory = _ArrowMemory()  # pylint: disable=protected-access  # the same class
        return twin

    def __repr__(self) -> str:
        return f"Tokenizer(key_id={self.key_id!r}, versions={len(self._earlier) + 1})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Tokenizer holds a secret key and cannot be pickled; build one where it is used")

    @property
    def key_id(self) -> str:
        """A stable, non-secret name for the key versions (record it with tokenized data to know what made it).

        One version: ``key_`` + an HMAC of a fixed label under the key. After a rotation the name
        also covers the versions before (the HMAC of the label and the previous name under the new key).
        """
        return self.key_ids()[-1]

    def key_ids(self) -> list[str]:
        """The names of the key chain after each version, oldest first (the last is :attr:`key_id`)."""
        names: list[str] = []
        for key in (*self._earlier, self._key):
            label = b"churnops key id" + (f" after {names[-1]}".encode() if names else b"")
            names.append("key_" + hmac.digest(key, label, "sha256").hex()[:16])
        return names

    @property
    def previous(self) -> Tokenizer | None:
        """The tokenizer before the newest version was added (``None`` for a single version)."""
        if not self._earlier:
            return None
        return Tokenizer(self._earlier[-1], self._earlier[:-1])

    def token(self, value: str) -> str:
        """The token for one identifier, normalised first (:func:`normalise_id`): ``" CUST-1 "`` is ``"CUST-1"``."""
        if self._memory is None:
            return self.token_versions(value)[-1]
        token = self._memory.get(value)
        if token is None:
            token = self._memory[value] = self.token_versions(value)[-1]
        return token

    def token_versions(self, value: str) -> list[str]:
        """The identifier's token under each key version's chain, oldest first (the last is :meth:`token`).

        Copies made before a rotation (history, MLflow artifacts, pipeline datasets) hold the earlier ones.
        """
        if not isinstance(value, str):
            raise TypeError(f"only strings are tokenized, not {type(value).__name__}")
        text = normalise_id(value)
        chain: list[str] = []
        for keyed in self._keyed:
            text = _link(keyed, text)
            chain.append(text)
        return chain

    def retokenize(self, token: str) -> str:
        """A token made under the versions before the newest one, as the newest chain makes it.

        This is how a rotation rewrites the lake without any raw identifier.
        """
        if not self._earlier:
            raise ValueError("a single key version has nothing to re-tokenize from")
        if not (isinstance(token, str) and token.startswith(TOKEN_PREFIX)):
            raise ValueError("only tokens are re-tokenized")
        return _link(self._keyed[-1], token)

    def digest(self, label: str, value: str, hex_chars: int = 12) -> str:
        """A keyed digest of ``value`` for another use than identifiers (such as column names).

        Its key is derived from the newest tokenization key and ``label`` (HMAC of the label under
        the key), so a digest never equals a prefix of the token of the same text.
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

    def arrow_tokens(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Tokenize an Arrow text column: the same tokens as :meth:`tokens`, each distinct value hashed once,
        nulls kept, in the column's own type (``string`` or ``large_string``; an all-null column of type
        ``null`` is returned as it is).

        Raises :class:`TypeError` for a column of another type (an id read as a number has lost its text).
        """
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_null(values.type):
            return values
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise TypeError(f"only text columns are tokenized, not {values.type}")
        encoded = values.dictionary_encode()
        if self._arrow_memory is None:
            tokens = pa.array(self._new_tokens(encoded.dictionary.to_pylist()), type=values.type)
        else:
            tokens = self._arrow_memory.tokens(encoded.dictionary, self._new_tokens).cast(values.type)
        return tokens.take(encoded.indices)  # a null index (a null value) gives null

    def _new_tokens(self, values: list[str]) -> list[str]:
        """The token of each of ``values``, hashed (not looked up in a memory)."""
        return [self.token_versions(value)[-1] for value in values]


class _ArrowMemory:
    """The tokens a remembering tokenizer made for Arrow columns, in Arrow: the distinct values met and their
    tokens, in the order met. A column's distinct values are looked up in one hash join
    (``index_in``); only those not met before are hashed, and added."""

    def __init__(self) -> None:
        self._values = pa.array([], type=pa.large_string())
        self._tokens = pa.array([], type=pa.large_string())

    def tokens(self, distinct: pa.Array, make: Callable[[list[str]], list[str]]) -> pa.Array:
        """The tokens of ``distinct`` (text, no null, no repeat), ``make`` making those of values not met before."""
        distinct = distinct.cast(pa.large_string())
        positions = pc.call_function("index_in", [distinct], pc.SetLookupOptions(self._values))
        known = self._tokens.take(positions)  # null where the value is new
        if not positions.null_count:
            return known
        new = positions.is_null()
        new_values = distinct.filter(new)
        new_tokens = pa.array(make(new_values.to_pylist()), type=pa.large_string())
        self._values = pa.concat_arrays([self._values, new_values])
        self._tokens = pa.concat_arrays([self._tokens, new_tokens])
        return pc.call_function("replace_with_mask", [known, new, new_tokens])


def _policy(kind: str, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """``kind``'s policy on data with ``columns``: (columns to drop, columns to tokenize)."""
    if kind not in PII_POLICY:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(PII_POLICY)}")
    policy = PII_POLICY[kind]
    dropped = [column for column, action in policy.items() if action == "drop" and column in columns]
    tokenized = [column for column, action in policy.items() if action == "tokenize" and column in columns]
    clashes = [tokenized_column(column) for column in tokenized if tokenized_column(column) in columns]
    if clashes:
        raise ValueError(f"{kind} data already has column(s) {clashes}; refusing to overwrite them with tokens")
    return dropped, tokenized


def apply_pii_policy(df: pd.DataFrame, kind: str, tokenizer: Tokenizer) -> pd.DataFrame:
    """Return a copy of ``df`` with ``kind``'s policy applied: tokenize, rename, drop.

    Columns the policy names but ``df`` lacks are ignored. Raises :class:`ValueError` for an
    unknown ``kind`` or when a tokenized column's new name is already taken.
    """
    dropped, tokenized = _policy(kind, [str(column) for column in df.columns])
    result = df.drop(columns=dropped)
    for column in tokenized:
        result[column] = tokenizer.tokens(result[column])
    return result.rename(columns={column: tokenized_column(column) for column in tokenized})


def apply_pii_policy_to_table(table: pa.Table, kind: str, tokenizer: Tokenizer) -> pa.Table:
    """:func:`apply_pii_policy` on an Arrow table, without pandas: the same columns tokenized, renamed and
    dropped, and the same errors. The table's pandas metadata follows its columns (what
    :meth:`pyarrow.Table.from_pandas` of the frame with the policy applied would give), so the two
    give the same parquet files.
    """
    dropped, tokenized = _policy(kind, table.column_names)
    result = table.drop_columns(dropped)
    for column in tokenized:
        position = result.schema.get_field_index(column)
        tokens = tokenizer.arrow_tokens(result.column(position))
        result = result.set_column(position, pa.field(tokenized_column(column), tokens.type), tokens)
    metadata = dict(table.schema.metadata or {})
    if b"pandas" in metadata:
        pandas_metadata = json.loads(metadata[b"pandas"])
        described = []
        for entry in pandas_metadata["columns"]:
            if entry["name"] in dropped:
                continue
            if entry["name"] in tokenized:
                entry = {
                    **entry,
                    "name": tokenized_column(entry["name"]),
                    "field_name": tokenized_column(entry["name"]),
                }
            described.append(entry)
        pandas_metadata["columns"] = described
        metadata[b"pandas"] = json.dumps(pandas_metadata).encode("utf-8")
    return result.replace_schema_metadata(metadata or None)


def chain_named(keys: Sequence[bytes], key_id: str | None) -> Tokenizer:
    """The tokenizer of the versions ``keys`` (oldest first) up to the one whose chain is named ``key_id`` (what a
    lake or a snapshot recorded as tokenizing it); ``None``: every version.

    A version added to the secret before ``churnops privacy rotate-key`` ran is left out, so data still under
    the earlier chain is read with that chain. A ``key_id`` none of the chains has is refused
    (:class:`ConfigurationError`): tokens made with another key find nobody.
    """
    newest = Tokenizer(keys[-1], keys[:-1])
    if key_id is None:
        return newest
    names = newest.key_ids()
    if key_id not in names:
        raise ConfigurationError(
            f"the data is tokenized under {key_id}, which none of the {len(keys)} key versions makes (the newest "
            f"chain is {names[-1]}): load the lake's key versions (docs/security.md, Rotating the key)"
        )
    last = names.index(key_id)
    return Tokenizer(keys[last], keys[:last])


def lake_tokenizer(settings: Settings, key_id: str | None = None) -> Tokenizer:
    """The tokenizer of the key versions the settings' secret holds, up to the chain named ``key_id``
    (:func:`chain_named`; ``None``: every version, the newest last)."""
    return chain_named(tokenization_keys(settings), key_id)
