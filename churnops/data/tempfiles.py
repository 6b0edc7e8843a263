"""Temporary files that the disk accounting of a pod can see.

``tempfile.TemporaryFile`` on Linux makes a file with no name (``O_TMPFILE``, or created and unlinked at once).
kubelet measures an ``emptyDir`` volume by walking its files, so such a file's bytes are on the volume but not
counted against its size limit: an ingest task's object, partition and spools could outgrow the limit the task
declares (``pipelines/common.py``, ``INGEST``) without being evicted, and fill the node's disk instead.
:func:`temporary_file` makes a file with a name in the temporary directory (``TMPDIR``), removed when it is
closed, so the limit counts every byte.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

PREFIX = "churnops-"


class _RemovedOnClose(io.FileIO):
    """A file opened by name and removed when closed (by ``close``, or when collected without it)."""

    def __init__(self, path: str) -> None:
        self.path = path  # set first: a failed open still closes (and removes) it
        super().__init__(path, "r+")

    def close(self) -> None:
        try:
            super().close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def temporary_file(prefix: str = PREFIX) -> io.BufferedRandom:
    """A new, empty file for reading and writing bytes in the temporary directory, readable by this user only
    (``mkstemp``), named ``<prefix>...`` while it is open and removed when it is closed."""
    descriptor, name = tempfile.mkstemp(prefix=prefix)
    try:
        os.close(descriptor)
        return io.BufferedRandom(_RemovedOnClose(name))
    except BaseException:
        os.unlink(name)
        raise
