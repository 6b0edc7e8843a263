"""The container-scanning gate: apply the project's policy to a Trivy JSON report.

Trivy scans (``trivy image|fs|config --format json``) write a report with ``SchemaVersion`` 2 and a
list of ``Results``, each holding ``Vulnerabilities``, ``Misconfigurations`` and ``Secrets``. The
policy:

* a vulnerability of severity CRITICAL fails the gate, fixable or not;
* a vulnerability of severity HIGH fails the gate when a fix exists (a ``FixedVersion``, or
  ``Status`` "fixed");
* a misconfiguration that Trivy reports with ``Status`` "FAIL" at HIGH or CRITICAL fails it;
* any secret fails it;
* everything else is listed, not blocking.

A report that lists no scanned target (no ``Results``) fails the gate: a scan that saw nothing
proves nothing.

A finding is waived by an entry in the ignore file (Trivy's ``.trivyignore`` line format, which
Trivy itself is never given: the scans run with ``--ignorefile /dev/null`` and this gate is the only
judge). Every entry names the finding's id, **where** it applies (``pkg:<package>``, the
vulnerable package's name, and/or ``target:<target>``, the report's target: an image layer's OS,
a lock file, a Dockerfile, a file holding a secret), an expiry date (``exp:YYYY-MM-DD``, as Trivy
reads it) at most :data:`MAX_WAIVER_DAYS` days ahead, and a reason (the text after ``#``), e.g.::

    CVE-2019-18224 pkg:libidn2-0 exp:2026-12-31 # libidn2 is not reachable: no IDN input is parsed

An entry waives only the findings with its id in its package and target, so a waiver written for
one finding cannot silence the same id elsewhere (say, a secret rule id in another file). An entry
without a place, reason or expiry, whose expiry has passed or lies more than
:data:`MAX_WAIVER_DAYS` days ahead, fails the gate by itself, so a waiver cannot outlive its review.

The module uses the standard library only, so a Cloud Build step can run it from the source tree
(``python -m churnops.platform.vulngate report.json --ignorefile .trivyignore``). Exit status: 0
pass, 1 blocked, 2 unreadable report or ignore file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from churnops.errors import ChurnopsError

SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
MAX_WAIVER_DAYS = 90  # the longest a waiver may run before it is reviewed again


class GateInputError(ChurnopsError, ValueError):
    """The report or the ignore file is not what the gate can judge (malformed, wrong schema)."""


@dataclass(frozen=True)
class IgnoreEntry:
    """One line of the ignore file."""

    id: str
    line: int
    expires: date | None
    reason: str
    package: str = ""
    target: str = ""

    def problems(self, today: date) -> list[str]:
        """Why this entry is not acceptable (empty when it is)."""
        found = []
        if not self.package and not self.target:
            found.append("says not where it applies (add pkg:<package> and/or target:<target>)")
        if self.expires is None:
            found.append("has no expiry date (add exp:YYYY-MM-DD)")
        elif self.expires < today:
            found.append(f"expired on {self.expires.isoformat()}")
        elif self.expires > today + timedelta(days=MAX_WAIVER_DAYS):
            found.append(
                f"runs past {(today + timedelta(days=MAX_WAIVER_DAYS)).isoformat()} "
                f"(at most {MAX_WAIVER_DAYS} days ahead)"
            )
        if not self.reason:
            found.append("has no reason (add '# why it is safe to ignore')")
        return found

    def covers(self, finding: "Finding") -> bool:
        """Whether this entry waives ``finding``: its id, in its package and its target (those it names)."""
        return (
            self.id == finding.id
            and (not self.package or self.package == finding.package)
            and (not self.target or self.target == finding.target)
        )


@dataclass(frozen=True)
class Finding:
    """One finding of a report, in the terms the policy uses."""

    kind: str  # "vulnerability" | "misconfiguration" | "secret"
    id: str
    severity: str
    target: str
    package: str = ""
    installed: str = ""
    fixed: str = ""
    title: str = ""

    @property
    def fixable(self) -> bool:
        """Whether a fixed version exists."""
        return bool(self.fixed)

    def blocking(self) -> bool:
        """Whether the policy blocks on this finding (before waivers)."""
        if self.kind == "secret":
            return True
        if self.kind == "misconfiguration":
            return self.severity in ("HIGH", "CRITICAL")
        return self.severity == "CRITICAL" or (self.severity == "HIGH" and self.fixable)

    def describe(self) -> str:
        """One line for the gate's output (never a secret's matched text)."""
        where = f"{self.package} {self.installed}".strip()
        fix = f" -> fixed in {self.fixed}" if self.fixed else (" (no fix)" if self.kind == "vulnerability" else "")
        return f"{self.severity:8} {self.kind} {self.id} in {self.target}{': ' + where if where else ''}{fix}"


@dataclass
class GateResult:
    """What the gate decided, and why."""

    blocking: list[Finding] = field(default_factory=list)
    waived: list[tuple[Finding, IgnoreEntry]] = field(default_factory=list)
    other: list[Finding] = field(default_factory=list)
    bad_entries: list[tuple[IgnoreEntry, list[str]]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when nothing blocks and every ignore entry is valid."""
        return not self.blocking and not self.bad_entries

    def summary(self) -> str:
        """A human-readable account of the decision."""
        lines = []
        for entry, problems in self.bad_entries:
            lines.append(f"BAD IGNORE ENTRY line {entry.line} ({entry.id}): {'; '.join(problems)}")
        for finding in self.blocking:
            lines.append(f"BLOCKED  {finding.describe()}")
        for finding, entry in self.waived:
            lines.append(f"WAIVED   {finding.describe()} (until {entry.expires}: {entry.reason})")
        counts: dict[str, int] = {}
        for finding in self.other:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        if counts:
            listed = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if s in counts)
            lines.append(f"not blocking: {listed}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: {len(self.blocking)} blocking, {len(self.waived)} waived, "
            f"{len(self.bad_entries)} bad ignore entries"
        )
        return "\n".join(lines)


def parse_ignore_file(text: str) -> list[IgnoreEntry]:
    """Parse Trivy's ``.trivyignore`` format (plus the ``# reason`` convention) into entries."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        body, _, reason = line.partition("#")
        fields = body.split()
        finding_id, expires, place = fields[0], None, {"pkg": "", "target": ""}
        if not _ID.match(finding_id):
            raise GateInputError(f"ignore file line {number}: {finding_id!r} is not a finding id")
        for extra in fields[1:]:
            key, _, value = extra.partition(":")
            if key == "exp":
                try:
                    expires = date.fromisoformat(value)
                except ValueError:
                    raise GateInputError(f"ignore file line {number}: {extra!r} is not exp:YYYY-MM-DD") from None
            elif key in place and value and not place[key]:
                place[key] = value
            else:
                raise GateInputError(
                    f"ignore file line {number}: unknown or repeated field {extra!r} "
                    "(fields: pkg:, target:, exp:; put the reason after '#')"
                )
        entries.append(IgnoreEntry(finding_id, number, expires, reason.strip(), place["pkg"], place["target"]))
    return entries


def _field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise GateInputError(f"{where}: missing or empty {name!r}")
    return value


def _severity(item: dict[str, Any], where: str) -> str:
    severity = _field(item, "Severity", where)
    if severity not in SEVERITIES:
        raise GateInputError(f"{where}: unknown severity {severity!r}")
    return severity


def findings(report: Any) -> list[Finding]:
    """Every vulnerability, failed misconfiguration and secret of a Trivy JSON report.

    Raises :class:`GateInputError` when the report is not a Trivy report of schema version 2.
    """
    if not isinstance(report, dict) or report.get("SchemaVersion") != 2:
        raise GateInputError("not a Trivy JSON report of SchemaVersion 2")
    results = report.get("Results")
    if results is None or results == []:
        raise GateInputError(
            "the report lists no scanned target (no 'Results'): a scan that saw nothing proves nothing"
        )
    if not isinstance(results, list):
        raise GateInputError("'Results' is not a list")
    found: list[Finding] = []
    for index, result in enumerate(results):
        if not isinstance(result, dict):
            raise GateInputError(f"Results[{index}] is not an object")
        target = _field(result, "Target", f"Results[{index}]")
        for i, vuln in enumerate(result.get("Vulnerabilities") or []):
            where = f"{target} Vulnerabilities[{i}]"
            status = vuln.get("Status", "")
            fixed = vuln.get("FixedVersion") or ("(fixed)" if status == "fixed" else "")
            found.append(
                Finding(
                    "vulnerability",
                    _field(vuln, "VulnerabilityID", where),
                    _severity(vuln, where),
                    target,
                    _field(vuln, "PkgName", where),
                    vuln.get("InstalledVersion", ""),
                    fixed,
                    vuln.get("Title", ""),
                )
            )
        for i, misconf in enumerate(result.get("Misconfigurations") or []):
            where = f"{target} Misconfigurations[{i}]"
            if misconf.get("Status", "FAIL") != "FAIL":
                continue
            found.append(
                Finding(
                    "misconfiguration",
                    _field(misconf, "ID", where),
                    _severity(misconf, where),
                    target,
                    title=misconf.get("Title", ""),
                )
            )
        for i, secret in enumerate(result.get("Secrets") or []):
            where = f"{target} Secrets[{i}]"
            found.append(
                Finding(
                    "secret",
                    _field(secret, "RuleID", where),
                    _severity(secret, where),
                    target,
                    title=secret.get("Title", ""),
                )
            )
    return found


def evaluate(report: Any, ignores: Sequence[IgnoreEntry] = (), today: date | None = None) -> GateResult:
    """Apply the policy and the ignore entries to a parsed Trivy report."""
    today = today or datetime.now(timezone.utc).date()
    result = GateResult()
    valid: list[IgnoreEntry] = []
    for entry in ignores:
        problems = entry.problems(today)
        if problems:
            result.bad_entries.append((entry, problems))
        else:
            valid.append(entry)
    for finding in findings(report):
        waiver = next((entry for entry in valid if entry.covers(finding)), None)
        if waiver is not None:
            result.waived.append((finding, waiver))
        elif finding.blocking():
            result.blocking.append(finding)
        else:
            result.other.append(finding)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: judge one or more reports; print the decision; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m churnops.platform.vulngate", description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="Trivy JSON report(s)")
    parser.add_argument(
        "--ignorefile", type=Path, default=None, help="Trivy ignore file (entries need exp: and # reason)"
    )
    parser.add_argument("--today", type=date.fromisoformat, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        ignores = parse_ignore_file(args.ignorefile.read_text(encoding="utf-8")) if args.ignorefile else []
        outcomes = []
        for path in args.reports:
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise GateInputError(f"{path}: cannot read a JSON report ({error})") from None
            outcome = evaluate(report, ignores, args.today)
            print(f"== {path} ({report.get('ArtifactName', '?')})\n{outcome.summary()}")
            outcomes.append(outcome.passed)
    except (GateInputError, OSError) as error:
        print(f"vulnerability gate: {error}", file=sys.stderr)
        return 2
    return 0 if all(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
