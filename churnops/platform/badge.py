"""The CI status badge: a small SVG that the build publishes to a bucket the README links to.

The first step of every build on ``main`` publishes "not passing" (amber) and the last step,
reached only when every step before it succeeded, publishes "passing" (green) with the short
commit SHA. So the badge is green exactly when the newest build of ``main`` passed, and amber while
that build runs or after it failed. Standard library only (a Cloud Build step runs it from source):

    python -m churnops.platform.badge --status passing --commit abc1234 --output build/badge.svg
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

COLOURS = {"passing": "#2e7d32", "not passing": "#b26a00"}
_CHAR_WIDTH = 7  # px per character of 11px Verdana, near enough for a badge


def render(status: str, commit: str = "", label: str = "ci") -> str:
    """The SVG of one badge: ``label`` on the left, ``status`` (and the short commit) on the right."""
    if status not in COLOURS:
        raise ValueError(f"unknown status {status!r}; expected one of {sorted(COLOURS)}")
    right = f"{status} {commit[:7]}".strip()
    left_w, right_w = 10 + _CHAR_WIDTH * len(label), 10 + _CHAR_WIDTH * len(right)
    width = left_w + right_w
    label_x, right_x = left_w / 2, left_w + right_w / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{escape(label)}: {escape(right)}">'
        f"<title>{escape(label)}: {escape(right)}</title>"
        f'<rect width="{left_w}" height="20" fill="#555"/>'
        f'<rect x="{left_w}" width="{right_w}" height="20" fill="{COLOURS[status]}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x}" y="14">{escape(label)}</text>'
        f'<text x="{right_x}" y="14">{escape(right)}</text>'
        "</g></svg>\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write one badge file."""
    parser = argparse.ArgumentParser(prog="python -m churnops.platform.badge", description="Write the CI badge SVG.")
    parser.add_argument("--status", required=True, choices=sorted(COLOURS))
    parser.add_argument("--commit", default="")
    parser.add_argument("--label", default="ci")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(args.status, args.commit, args.label), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
