"""The CI badge is a well-formed SVG that says what the build concluded."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from churnops.platform.badge import COLOURS, main, render

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("status", "commit"), [("passing", "0123456789abcdef"), ("not passing", "")])
def test_the_badge_names_the_status_and_short_commit(status: str, commit: str, tmp_path: Path) -> None:
    out = tmp_path / "badges" / "main.svg"
    assert main(["--status", status, "--commit", commit, "--output", str(out)]) == 0
    root = ElementTree.fromstring(out.read_text(encoding="utf-8"))
    texts = [node.text for node in root.iter(f"{SVG}text")]
    assert texts == ["ci", f"{status} {commit[:7]}".strip()]
    assert COLOURS[status] in [node.get("fill") for node in root.iter(f"{SVG}rect")]


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown status"):
        render("green")
    assert "<script" not in render("passing", "<script>")  # the commit text is escaped
