"""Reading raw objects in chunks: the chunks together are the object read whole."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import random
import struct
import zlib

import pandas as pd
import pytest

from churnops.data import contract, parse, schema
from churnops.data.parse import ParsedObject, UnreadableObject
from tests.unit.data.test_contract import (
    EVENTS_NAME,
    HOUR,
    NOW,
    SUBS_NAME,
    csv_object,
    event,
    jsonl,
    subscription,
)


def chunks(name: str, data: bytes, chunk_bytes: int | None, chunk_rows: int | None = None) -> list[ParsedObject]:
    """Every chunk of an object."""
    return list(parse.iter_object(name, io.BytesIO(data), None, chunk_bytes, chunk_rows))


def checked(kind: str, parts: list[ParsedObject]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The valid and quarantined rows of the chunks, each checked on its own, in order."""
    results = [contract.check(part, kind, HOUR, NOW) for part in parts]
    valid = pd.concat([r.valid for r in results], ignore_index=True)
    quarantined = pd.concat([r.quarantined for r in results], ignore_index=True)
    data_columns = [c for c in quarantined.columns if not c.startswith("_")]
    quarantined[data_columns] = quarantined[data_columns].astype(object).where(quarantined[data_columns].notna(), None)
    return valid, quarantined


def events_text() -> bytes:
    """JSON Lines text of 40 events with a byte order mark, blank and malformed lines, and bad rows."""
    lines = [codecs.BOM_UTF8 + json.dumps(event(event_id="e-0")).encode()]
    for number in range(1, 40):
        record = event(event_id=f"e-{number}", duration_s=float(number))
        if number % 9 == 0:
            record["event_type"] = "not-a-type"
        lines.append(json.dumps(record).encode())
        if number % 11 == 0:
            lines.append(b"")
        if number % 13 == 0:
            lines.append(b'{"event_id": "broken", ')
    lines.append(json.dumps(event(event_id="e-last", event_time="2024-05-01T08:00:00Z")).encode())  # out of hour
    return b"\n".join(lines) + b"\n"


def test_jsonl_chunks_hold_whole_lines_and_the_object_s_line_numbers() -> None:
    data = gzip.compress(events_text(), mtime=0)
    whole = parse.parse_object(EVENTS_NAME, data)
    parts = chunks(EVENTS_NAME, data, chunk_bytes=700)
    assert len(parts) > 10
    assert sum(part.rows_in for part in parts) == whole.rows_in
    assert [n for part in parts for n in part.lines()] == whole.lines().tolist()
    malformed = pd.concat([part.malformed for part in parts], ignore_index=True)
    pd.testing.assert_frame_equal(malformed, whole.malformed)
    ids = [i for part in parts for i in part.rows["event_id"].tolist()]
    assert ids == whole.rows["event_id"].tolist()


def test_jsonl_chunks_checked_one_by_one_give_what_the_whole_object_gives() -> None:
    data = gzip.compress(events_text(), mtime=0)
    whole = contract.check(parse.parse_object(EVENTS_NAME, data), schema.EVENTS, HOUR, NOW)
    valid, quarantined = checked(schema.EVENTS, chunks(EVENTS_NAME, data, chunk_bytes=700))
    pd.testing.assert_frame_equal(valid, whole.valid)
    assert quarantined[["event_id", "_line", "_reason"]].values.tolist() == (
        whole.quarantined[["event_id", "_line", "_reason"]].values.tolist()
    )
    assert quarantined["_line"].tolist()[-1] == len(events_text().splitlines())  # a bad row in the last chunk


def test_invalid_utf8_in_a_later_chunk_makes_the_object_unreadable_at_its_line() -> None:
    lines = [json.dumps(event(event_id=f"e-{n}")).encode() for n in range(30)]
    lines[25] = lines[25].replace(b"page_view", b"page_\xffview")
    data = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    parts = parse.iter_object(EVENTS_NAME, io.BytesIO(data), None, 500)
    assert len(next(parts).rows)  # the first chunks are read before the bad byte is reached
    with pytest.raises(UnreadableObject, match=r"^not valid UTF-8 text \(line 26\)$"):
        list(parts)
    with pytest.raises(UnreadableObject, match=r"^not valid UTF-8 text \(line 26\)$"):
        parse.parse_object(EVENTS_NAME, data)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "empty object"),
        (b"\n\n  \n" * 200, "empty object"),
        (b"[1]\n" * 300, "not JSON Lines: none of the 300 line(s) is a JSON object"),
    ],
)
def test_an_object_without_records_is_unreadable_however_it_is_chunked(text: bytes, reason: str) -> None:
    data = gzip.compress(text, mtime=0)
    for chunk_bytes in (None, 64):
        with pytest.raises(UnreadableObject) as raised:
            chunks(EVENTS_NAME, data, chunk_bytes)
        assert raised.value.reason == reason


def test_an_object_smaller_than_a_chunk_is_one_chunk() -> None:
    data = jsonl(event(event_id="only"))
    (part,) = chunks(EVENTS_NAME, data, chunk_bytes=parse.CHUNK_BYTES)
    assert part.rows["event_id"].tolist() == ["only"] and part.lines().tolist() == [1]


def test_a_line_longer_than_a_chunk_is_read_whole() -> None:
    data = jsonl(event(event_id="a", page="/" + "x" * 5000), event(event_id="b"))
    parts = chunks(EVENTS_NAME, data, chunk_bytes=100)
    assert [i for part in parts for i in part.rows["event_id"]] == ["a", "b"]
    assert [n for part in parts for n in part.lines()] == [1, 2]


def subscriptions_csv() -> bytes:
    """A CSV with a multi-line quoted value, a row with a missing field and a bad row last."""
    rows = [subscription(record_id=f"r-{n}", name=f"Name\n{n}" if n % 4 == 0 else "Jane") for n in range(20)]
    text = csv_object(rows).decode()
    lines = text.splitlines(keepends=True)
    lines.insert(8, "r-x,too,few\n")
    bad_last = subscription(record_id="r-bad", plan="no-such-plan")
    return ("".join(lines) + ",".join(bad_last.values()) + "\n").encode()


def test_csv_chunks_keep_records_whole_and_check_as_the_whole_object() -> None:
    data = subscriptions_csv()
    whole = parse.parse_object(SUBS_NAME, data)
    parts = chunks(SUBS_NAME, data, chunk_bytes=None, chunk_rows=3)
    assert len(parts) == 8
    assert [n for part in parts for n in part.lines()] == whole.lines().tolist()
    assert [r for part in parts for r in part.rows["name"]] == whole.rows["name"].tolist()
    malformed = pd.concat([part.malformed for part in parts], ignore_index=True)
    pd.testing.assert_frame_equal(malformed, whole.malformed)
    result = contract.check(whole, schema.SUBSCRIPTIONS, HOUR, NOW)
    valid, quarantined = checked(schema.SUBSCRIPTIONS, parts)
    pd.testing.assert_frame_equal(valid, result.valid)
    assert quarantined[["record_id", "_line", "_reason"]].values.tolist() == (
        result.quarantined[["record_id", "_line", "_reason"]].values.tolist()
    )
    assert quarantined["record_id"].tolist()[-1] == "r-bad"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty object"),
        (b" \n\r\n  ", "empty object"),
        (codecs.BOM_UTF8 + b"record_id,plan\nr-1,\xff\n", "not valid UTF-8 text (byte 19)"),
    ],
)
def test_csv_objects_that_cannot_be_read(data: bytes, reason: str) -> None:
    for rows in (None, 1):
        with pytest.raises(UnreadableObject) as raised:
            chunks(SUBS_NAME, data, chunk_bytes=None, chunk_rows=rows)
        assert raised.value.reason == reason


def _gzip_with_every_header_field(payload: bytes) -> bytes:
    """A gzip member whose header has an extra field, a file name, a comment and a header CRC."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(payload) + deflate.flush()
    header = b"\037\213\010\036" + bytes(6) + struct.pack("<H", 3) + b"abc" + b"name\0" + b"comment\0" + bytes(2)
    return header + body + struct.pack("<II", zlib.crc32(payload), len(payload))


def _read_all(stream: io.RawIOBase | io.BufferedIOBase, size: int) -> tuple[bytes, str | None]:
    """What reading ``stream`` ``size`` bytes at a time gives: the bytes, and the error that ended it (if any)."""
    data = []
    try:
        while block := stream.read(size):
            data.append(block)
    except (OSError, EOFError, zlib.error) as error:
        return b"".join(data), f"{type(error).__name__}: {error}"
    return b"".join(data), None


def test_gzip_members_read_as_gzipfile_reads_them_with_the_same_errors() -> None:
    """The JSON Lines reader's own gzip reader (large zlib calls) gives what gzip.GzipFile gives: the bytes of
    every member, and for a damaged stream the same error with the same message."""
    rng = random.Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(20_000)) + b"y" * 60_000
    streams = [
        gzip.compress(b""),
        gzip.compress(big),
        gzip.compress(b"a") + gzip.compress(big),  # two members
        gzip.compress(big) + bytes(10) + gzip.compress(b"b"),  # zero padding between members
        gzip.compress(big) + b"garbage",
        _gzip_with_every_header_field(big),
        b"this is not gzip",
        b"\x1f",
        b"\x1f\x8b\x07" + bytes(20),  # not deflate
    ]
    damaged = []
    for stream in streams:
        damaged += [stream[: rng.randrange(len(stream) + 1)] for _ in range(8)]  # truncated
        for _ in range(8):
            flipped = bytearray(stream)
            flipped[rng.randrange(len(flipped))] ^= 1 + rng.randrange(255)
            damaged.append(bytes(flipped))
    for stream in streams + damaged:
        for size in (7, 8192, 1 << 20):
            expected = _read_all(gzip.GzipFile(fileobj=io.BytesIO(stream), mode="rb"), size)
            got = _read_all(parse._GzipMembers(io.BytesIO(stream)), size)  # pylint: disable=protected-access
            assert got[1] == expected[1]
            if expected[1] is None:
                assert got[0] == expected[0]
