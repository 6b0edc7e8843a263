"""Running a pipeline locally leaves the caller's logging as it was."""

from __future__ import annotations

import io
import logging

from pipelines.local import root_logging_kept


def test_a_handler_left_by_a_task_is_dropped_and_the_callers_handlers_and_level_come_back() -> None:
    root = logging.getLogger()
    ours, level = root.handlers[:], root.level
    stream = io.StringIO()
    with root_logging_kept():
        # what a kfp.local task that found another task's handler puts back: a stream that is closed afterwards
        root.handlers[:] = [logging.StreamHandler(stream)]
        root.setLevel(logging.DEBUG)
    stream.close()
    assert root.handlers == ours and root.level == level
    logging.getLogger("churnops.test").warning("still logged after the run")  # no write to the closed stream
