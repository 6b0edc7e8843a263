"""PII policy and tokenizer: deterministic, keyed, join-preserving, and nothing raw survives."""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.data.privacy import PII_POLICY, Tokenizer, apply_pii_policy, apply_pii_policy_to_table

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def events_frame() -> pd.DataFrame:
    """Raw events with every PII column, a repeated customer and a null id."""
    return pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "customer_id": ["CUST-0000001", "CUST-0000002", "CUST-0000001", None],
            "event_type": ["login", "page_view", "purchase", "logout"],
            "amount": [None, None, 12.5, None],
            "ip_address": ["203.0.113.7", "2001:db8::1", None, "198.51.100.23"],
            "user_agent": ["Mozilla/5.0 (X11)", "curl/8.0", "Mozilla/5.0 (iPhone)", None],
            "email": ["ann@example.com", None, None, "bob@example.org"],
        }
    )


def subscriptions_frame() -> pd.DataFrame:
    """Raw subscription records for the same customers as :func:`events_frame`."""
    return pd.DataFrame(
        {
            "record_id": ["r1", "r2"],
            "customer_id": ["CUST-0000002", "CUST-0000001"],
            "name": ["Ann Example", "Bob Example"],
            "email": ["ann@example.com", "bob@example.org"],
            "phone": ["+1 202 555 0143", "+44 20 7946 0958"],
            "plan": ["basic", "premium"],
        }
    )


def test_token_is_deterministic_and_keyed() -> None:
    """Same key and value give the same token; another value or key gives another."""
    tokenizer = Tokenizer(KEY)
    token = tokenizer.token("CUST-0000001")
    assert token == Tokenizer(KEY).token("CUST-0000001")
    assert token.startswith("tok_") and len(token) == 4 + 32
    assert token != tokenizer.token("CUST-0000002")
    assert token != Tokenizer(OTHER_KEY).token("CUST-0000001")
    assert "CUST" not in token


def test_tokens_match_token_and_keep_nulls_index_and_name() -> None:
    """The vectorised form agrees with ``token`` and keeps nulls, index and name."""
    tokenizer = Tokenizer(KEY)
    values = pd.Series(["a", None, "b", "a", np.nan], index=[10, 11, 12, 13, 14], name="customer_id")
    tokens = tokenizer.tokens(values)
    assert list(tokens.index) == [10, 11, 12, 13, 14]
    assert tokens.name == "customer_id"
    assert tokens[10] == tokens[13] == tokenizer.token("a")
    assert tokens[12] == tokenizer.token("b")
    assert tokens[[11, 14]].isna().all()


def test_tokens_keep_pandas_string_dtype() -> None:
    """A pandas string column stays a string column with its missing values."""
    values = pd.Series(["a", pd.NA, "b"], dtype="string")
    tokens = Tokenizer(KEY).tokens(values)
    assert tokens.dtype == values.dtype
    assert tokens.isna().tolist() == [False, True, False]


def test_tokens_of_empty_and_all_null_columns() -> None:
    """Empty and all-null columns are handled."""
    tokenizer = Tokenizer(KEY)
    assert tokenizer.tokens(pd.Series([], dtype=object)).empty
    assert tokenizer.tokens(pd.Series([None, None], dtype=object)).isna().all()


def test_tokens_reject_non_strings() -> None:
    """Numeric ids are refused rather than tokenized from their printed form."""
    with pytest.raises(TypeError, match="only strings"):
        Tokenizer(KEY).tokens(pd.Series([1001, 1002]))


def test_joins_still_work_after_tokenization() -> None:
    """Events and subscriptions join on ``customer_token`` exactly as they did on ``customer_id``."""
    tokenizer = Tokenizer(KEY)
    events = events_frame()
    subscriptions = subscriptions_frame()
    raw = events.merge(subscriptions, on="customer_id")[["event_id", "record_id"]]
    tokenized = apply_pii_policy(events, "events", tokenizer).merge(
        apply_pii_policy(subscriptions, "subscriptions", tokenizer), on="customer_token"
    )[["event_id", "record_id"]]
    key = ["event_id", "record_id"]
    assert len(raw) == 3
    pd.testing.assert_frame_equal(
        raw.sort_values(key).reset_index(drop=True), tokenized.sort_values(key).reset_index(drop=True)
    )


@pytest.mark.parametrize("kind, frame", [("events", events_frame), ("subscriptions", subscriptions_frame)])
def test_no_raw_pii_value_survives(kind: str, frame: Callable[[], pd.DataFrame]) -> None:
    """No cell of the result contains any raw value of a tokenized or dropped column."""
    raw = frame()
    result = apply_pii_policy(raw, kind, Tokenizer(KEY))
    pii_columns = [column for column in PII_POLICY[kind] if column in raw.columns]
    raw_values = {str(value) for column in pii_columns for value in raw[column].dropna()}
    cells = [str(value) for value in result.to_numpy().ravel() if not pd.isna(value)]
    assert raw_values
    assert not [cell for cell in cells for value in raw_values if value in cell]
    assert "customer_id" not in result.columns and "customer_token" in result.columns
    assert not set(PII_POLICY[kind]) & set(result.columns)


def test_policy_keeps_other_columns_in_order_and_leaves_input_alone() -> None:
    """Non-PII columns are untouched, order is kept and the input frame is not modified."""
    raw = events_frame()
    before = raw.copy()
    result = apply_pii_policy(raw, "events", Tokenizer(KEY))
    assert list(result.columns) == ["event_id", "customer_token", "event_type", "amount"]
    kept = ["event_id", "event_type", "amount"]
    pd.testing.assert_frame_equal(result[kept], raw[kept])
    pd.testing.assert_frame_equal(raw, before)


def test_policy_accepts_missing_columns() -> None:
    """A frame without any PII column passes through unchanged."""
    raw = pd.DataFrame({"record_id": ["r1"], "plan": ["basic"]})
    pd.testing.assert_frame_equal(apply_pii_policy(raw, "subscriptions", Tokenizer(KEY)), raw)


def test_policy_rejects_unknown_kind_and_clashing_column() -> None:
    """An unknown kind, or an existing ``customer_token`` column, is a clear error."""
    with pytest.raises(ValueError, match="unknown record kind 'orders'"):
        apply_pii_policy(events_frame(), "orders", Tokenizer(KEY))
    clashing = events_frame().assign(customer_token="x")
    with pytest.raises(ValueError, match="customer_token"):
        apply_pii_policy(clashing, "events", Tokenizer(KEY))


def test_short_or_non_bytes_key_rejected() -> None:
    """Keys shorter than 32 bytes, or not bytes, are refused."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Tokenizer(b"x" * 31)
    with pytest.raises(TypeError):
        Tokenizer("k" * 40)  # type: ignore[arg-type]


def test_key_never_shown_or_pickled() -> None:
    """The key appears in no repr and cannot leak through pickling."""
    key = b"\x01secret-key-material-0123456789abcdef"
    tokenizer = Tokenizer(key)
    assert key.hex() not in repr(tokenizer) and "secret-key" not in repr(tokenizer)
    assert repr(tokenizer) == f"Tokenizer(key_id={tokenizer.key_id!r}, versions=1)"
    assert tokenizer.key_id != Tokenizer(KEY).key_id
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(tokenizer)


def test_an_id_is_tokenized_from_its_stripped_value_everywhere() -> None:
    tokenizer = Tokenizer(KEY)
    assert tokenizer.token(" CUST-0000033 ") == tokenizer.token("CUST-0000033") == tokenizer.token("CUST-0000033\t")
    column = pd.Series([" CUST-0000033 ", "CUST-0000033", None], dtype=object)
    tokens = tokenizer.tokens(column)
    assert tokens[0] == tokens[1] == tokenizer.token("CUST-0000033") and tokens[2] is None
    quarantined = apply_pii_policy(
        pd.DataFrame({"customer_id": [" CUST-0000033 "]}).astype("string"), "events", tokenizer
    )
    assert quarantined["customer_token"].iloc[0] == tokenizer.token("CUST-0000033")


def test_digests_have_their_own_key_derivation() -> None:
    tokenizer = Tokenizer(KEY)
    digest = tokenizer.digest("column name", "email")
    assert len(digest) == 12 and digest == tokenizer.digest("column name", "email")
    assert digest not in tokenizer.token("email")  # not a prefix (or any part) of the value's token
    assert digest != tokenizer.digest("another use", "email")
    assert digest != Tokenizer(bytes(range(1, 33))).digest("column name", "email")


def test_a_rotated_key_chains_the_versions() -> None:
    """Under versions k1, k2 a token is T_k2(T_k1(id)): the lake re-tokenizes from tokens alone."""
    old = Tokenizer(KEY)
    new_key = b"second-version-of-the-key-0123456789"
    new = Tokenizer(new_key, [KEY])
    assert new.token_versions(" CUST-0000033 ") == [old.token("CUST-0000033"), new.token("CUST-0000033")]
    assert new.retokenize(old.token("CUST-0000033")) == new.token("CUST-0000033")
    assert new.token("CUST-0000033") != Tokenizer(new_key).token("CUST-0000033")  # not the new key alone
    assert new.previous is not None and new.previous.key_id == old.key_id
    assert new.key_ids() == [old.key_id, new.key_id] and new.key_id != Tokenizer(new_key).key_id
    assert repr(new) == f"Tokenizer(key_id={new.key_id!r}, versions=2)" and new_key.hex() not in repr(new)
    with pytest.raises(ValueError, match="nothing to re-tokenize"):
        old.retokenize(old.token("CUST-0000033"))
    with pytest.raises(ValueError, match="only tokens"):
        new.retokenize("CUST-0000033")


def test_a_token_is_hmac_sha256_as_rfc_4231_computes_it() -> None:
    """RFC 4231 (HMAC-SHA256 test vectors), section 4.7, test case 6: a key longer than the block size.
    The token is ``tok_`` and the first 32 hex characters of that HMAC."""
    key = b"\xaa" * 131
    data = "Test Using Larger Than Block-Size Key - Hash Key First"
    expected = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    assert Tokenizer(key).token(data) == "tok_" + expected[:32]
    assert Tokenizer(key).remembering().token(data) == "tok_" + expected[:32]


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from([32, 63, 64, 65, 131]).flatmap(lambda size: st.binary(min_size=size, max_size=size)),
    text=st.text(),
)
def test_a_token_is_what_the_standard_library_hmac_gives(key: bytes, text: str) -> None:
    """The tokenizer's own HMAC (its key's two hash states made once) against Python's ``hmac`` for keys below,
    at, just above and well above SHA-256's 64-byte block, any text, in every form the tokenizer has."""
    expected = "tok_" + hmac.new(key, text.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    assert Tokenizer(key).token(text) == expected
    assert Tokenizer(key).remembering().arrow_tokens(pa.array([text])).to_pylist() == [expected]
    chained = "tok_" + hmac.new(OTHER_KEY, expected.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    assert Tokenizer(OTHER_KEY, [key]).token(text) == chained


@pytest.mark.parametrize("earlier", [[], [OTHER_KEY]], ids=["one version", "rotated"])
def test_a_remembering_tokenizer_gives_the_same_tokens_in_every_form(earlier: list[bytes]) -> None:
    """A tokenizer that remembers its tokens (one per ingest run) gives the tokens of the one it was made from,
    call after call (the chunks of a run), for pandas and Arrow columns, with nulls and unnormalised ids."""
    plain = Tokenizer(KEY, earlier)
    remembering = plain.remembering()
    chunks = [
        ["CUST-0000001", "CUST-0000002", None, "CUST-0000001"],
        [" CUST-0000002 ", "CUST-0000003", "CUST-0000001"],
        ["CUST-0000003", None, "CUST-0000004", " CUST-0000002 "],
    ]
    for values in chunks:
        expected = [None if value is None else plain.token_versions(value)[-1] for value in values]
        series = pd.Series(values, dtype=pd.StringDtype("pyarrow"))
        assert remembering.tokens(series).tolist() == [pd.NA if token is None else token for token in expected]
        assert remembering.tokens(series.astype(object)).tolist() == expected
        for arrow_type in (pa.string(), pa.large_string()):
            tokens = remembering.arrow_tokens(pa.chunked_array([pa.array(values, type=arrow_type)]))
            assert tokens.type == arrow_type and tokens.to_pylist() == expected
    assert remembering.key_id == plain.key_id and repr(remembering) == repr(plain)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(remembering)


def test_arrow_tokens_keep_an_all_null_column_and_reject_numbers() -> None:
    """An Arrow column with no value is returned as it is; a numeric one is refused, as in pandas."""
    nulls = pa.nulls(3)
    assert Tokenizer(KEY).arrow_tokens(nulls).equals(nulls)
    assert Tokenizer(KEY).arrow_tokens(pa.array([], type=pa.string())).to_pylist() == []
    with pytest.raises(TypeError, match="only text columns"):
        Tokenizer(KEY).arrow_tokens(pa.array([1001, 1002]))


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


@pytest.mark.parametrize("kind, frame", [("events", events_frame), ("subscriptions", subscriptions_frame)])
def test_the_policy_on_an_arrow_table_writes_the_parquet_of_the_policy_on_the_frame(
    kind: str, frame: Callable[[], pd.DataFrame]
) -> None:
    """Ingest applies the policy to Arrow tables: the parquet file it writes is byte for byte the one the
    frame with the policy applied gives, pandas metadata included (so readers get the same dtypes)."""
    tokenizer = Tokenizer(KEY)
    for raw in (frame(), frame().astype(pd.StringDtype("pyarrow")), frame().astype({"customer_id": "string"})):
        from_frame = pa.Table.from_pandas(apply_pii_policy(raw, kind, tokenizer), preserve_index=False)
        from_table = apply_pii_policy_to_table(
            pa.Table.from_pandas(raw, preserve_index=False), kind, tokenizer.remembering()
        )
        assert from_table.schema.equals(from_frame.schema, check_metadata=True)
        assert _parquet(from_table) == _parquet(from_frame)
        assert from_table.column("customer_token").to_pylist() == [
            None if pd.isna(value) else tokenizer.token(value) for value in raw["customer_id"]
        ]


def test_the_policy_on_an_arrow_table_refuses_what_it_refuses_on_a_frame() -> None:
    """An unknown kind, or an existing ``customer_token`` column, is refused for Arrow tables too."""
    with pytest.raises(ValueError, match="unknown record kind 'orders'"):
        apply_pii_policy_to_table(pa.Table.from_pandas(events_frame()), "orders", Tokenizer(KEY))
    clashing = pa.Table.from_pandas(events_frame().assign(customer_token="x"))
    with pytest.raises(ValueError, match="customer_token"):
        apply_pii_policy_to_table(clashing, "events", Tokenizer(KEY))
