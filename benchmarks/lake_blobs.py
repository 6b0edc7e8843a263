"""Embedded lake: storing a large, incompressible blob (like a parquet partition).

Compares, on the same random bytes in a fresh bare repository:

* **libgit2**: ``pygit2.Repository.create_blob``, which always deflates loose objects;
* **embedded**: ``EmbeddedRepository.put_objects``, which writes blobs of 1 MiB and more as
  loose objects with a stored (uncompressed) zlib stream, plus staging them on a branch.

Prints seconds and MB/s for both and their ratio, and the load average before and after; both must
yield the same git object id.
Run: ``.venv/bin/python benchmarks/lake_blobs.py [--megabytes 50] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pygit2

from churnops.data.versioning.embedded import EmbeddedRepository


def _best(seconds: list[float]) -> float:
    return min(seconds)


def main() -> None:
    """Time both ways of storing the blob and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {_load()} (1, 5, 15 min; {os.cpu_count()} cores)")
    data = os.urandom(args.megabytes * 1_000_000)
    plain, embedded = [], []
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
            raw = pygit2.init_repository(str(Path(tmp) / "plain"), bare=True)
            started = time.perf_counter()
            plain_id = raw.create_blob(data)
            plain.append(time.perf_counter() - started)

            repo = EmbeddedRepository(Path(tmp) / "lake")
            repo.ensure()
            repo.create_branch("bench")
            started = time.perf_counter()
            repo.put_objects("bench", {f"part-{attempt}.parquet": data})
            embedded.append(time.perf_counter() - started)
            staged = f"refs/churnops-staging/bench:part-{attempt}.parquet"
            stored = pygit2.Repository(str(repo.path)).revparse_single(staged)
            assert str(stored.id) == str(plain_id), "both must store the same git object"
    size = len(data) / 1e6
    print(f"blob of {size:.0f} MB, best of {args.repeat}")
    print(f"  libgit2 create_blob (deflate):   {_best(plain):6.2f} s  {size / _best(plain):7.1f} MB/s")
    print(f"  embedded put_objects (stored):   {_best(embedded):6.2f} s  {size / _best(embedded):7.1f} MB/s")
    print(f"  embedded / libgit2 time: {_best(embedded) / _best(plain):.2f}")
    print(f"load average at end: {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
