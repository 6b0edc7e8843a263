"""The vulnerability gate on real Trivy reports (tests/specs/trivy/, Trivy's own golden outputs)."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from churnops.platform.vulngate import GateInputError, evaluate, main, parse_ignore_file

TRIVY = Path(__file__).resolve().parents[2] / "specs" / "trivy"
TODAY = date(2026, 11, 29)


def report(name: str) -> dict[str, Any]:
    """One vendored Trivy report, parsed (a fresh copy each time)."""
    return json.loads((TRIVY / f"{name}.json").read_text(encoding="utf-8"))


def vulnerabilities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every vulnerability entry of a report."""
    return [v for result in doc["Results"] for v in result.get("Vulnerabilities") or []]


def test_a_fixable_critical_blocks() -> None:
    outcome = evaluate(report("debian-buster"), today=TODAY)
    assert not outcome.passed
    assert [(f.id, f.package, f.fixed) for f in outcome.blocking] == [
        ("CVE-2019-18224", "libidn2-0", "2.0.5-1+deb10u1")
    ]
    assert [f.id for f in outcome.other] == ["CVE-2019-18276"]  # LOW, unfixed: listed only


def test_an_unfixed_critical_still_blocks() -> None:
    doc = report("debian-buster")
    for vuln in vulnerabilities(doc):
        vuln.pop("FixedVersion", None)
        vuln["Status"] = "affected"
    assert [f.id for f in evaluate(doc, today=TODAY).blocking] == ["CVE-2019-18224"]


def test_high_blocks_only_when_a_fix_exists() -> None:
    doc = report("pip")
    assert [(f.id, f.severity) for f in evaluate(doc, today=TODAY).blocking] == [("CVE-2019-14806", "HIGH")]
    for vuln in vulnerabilities(doc):
        vuln.pop("FixedVersion", None)
        vuln["Status"] = "will_not_fix"
    outcome = evaluate(doc, today=TODAY)
    assert outcome.passed
    assert sorted(f.severity for f in outcome.other) == ["HIGH", "MEDIUM"]


def test_a_clean_report_passes() -> None:
    doc = report("debian-buster")
    for result in doc["Results"]:
        result["Vulnerabilities"] = [v for v in result["Vulnerabilities"] if v["Severity"] == "LOW"]
    outcome = evaluate(doc, today=TODAY)
    assert outcome.passed and not outcome.blocking and len(outcome.other) == 1


@pytest.mark.parametrize("results", [None, []], ids=["no Results", "empty Results"])
def test_a_report_that_scanned_nothing_fails(results: Any) -> None:
    empty = copy.deepcopy(report("debian-buster"))
    empty.pop("Results")
    if results is not None:
        empty["Results"] = results
    with pytest.raises(GateInputError, match="no scanned target"):
        evaluate(empty, today=TODAY)


def test_secrets_and_high_misconfigurations_block() -> None:
    assert {f.id for f in evaluate(report("secrets"), today=TODAY).blocking} == {"aws-access-key-id", "mysecret"}
    assert [f.id for f in evaluate(report("dockerfile"), today=TODAY).blocking] == ["DS-0002"]


def test_a_valid_ignore_entry_waives_the_finding() -> None:
    ignores = parse_ignore_file(
        "# waivers are reviewed before they expire\n"
        "CVE-2019-18224 pkg:libidn2-0 exp:2026-12-31 # libidn2 is never given IDN input here\n"
    )
    outcome = evaluate(report("debian-buster"), ignores, today=TODAY)
    assert outcome.passed
    assert [(f.id, e.reason) for f, e in outcome.waived] == [
        ("CVE-2019-18224", "libidn2 is never given IDN input here")
    ]


def test_an_expired_ignore_entry_fails_the_gate_and_waives_nothing() -> None:
    ignores = parse_ignore_file("CVE-2019-18224 pkg:libidn2-0 exp:2026-11-28 # was waiting for the base image\n")
    outcome = evaluate(report("debian-buster"), ignores, today=TODAY)
    assert not outcome.passed
    assert [f.id for f in outcome.blocking] == ["CVE-2019-18224"]
    assert outcome.bad_entries[0][1] == ["expired on 2026-11-28"]
    # Expired even when the finding is gone: a stale waiver must be removed.
    clean = evaluate(
        {"SchemaVersion": 2, "Results": [{"Target": "Dockerfile", "Class": "config"}]}, ignores, today=TODAY
    )
    assert not clean.passed and "BAD IGNORE ENTRY line 1" in clean.summary()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("CVE-2019-18224 pkg:libidn2-0 # no date", "has no expiry date (add exp:YYYY-MM-DD)"),
        ("CVE-2019-18224 pkg:libidn2-0 exp:2027-01-01", "has no reason (add '# why it is safe to ignore')"),
        ("CVE-2019-18224 pkg:libidn2-0 exp:2027-01-01 #   ", "has no reason (add '# why it is safe to ignore')"),
        (
            "CVE-2019-18224 exp:2027-01-01 # anywhere",
            "says not where it applies (add pkg:<package> and/or target:<target>)",
        ),
        (
            "CVE-2019-18224 pkg:libidn2-0 exp:2027-02-28 # for a long time",
            "runs past 2027-02-27 (at most 90 days ahead)",
        ),
    ],
)
def test_an_entry_without_reason_or_expiry_is_refused(line: str, problem: str) -> None:
    outcome = evaluate(report("debian-buster"), parse_ignore_file(line), today=TODAY)
    assert not outcome.passed
    assert outcome.bad_entries[0][1] == [problem]
    assert [f.id for f in outcome.blocking] == ["CVE-2019-18224"]


@pytest.mark.parametrize(
    "text",
    [
        "CVE-1 exp:31-12-2026 # date order",
        "CVE-1 exp:2027-01-01 because # reason",
        "CVE-1 pkg:a pkg:b exp:2027-01-01 # two packages",
        "CVE-1 pkg: exp:2027-01-01 # empty",
    ],
)
def test_a_malformed_ignore_line_is_an_input_error(text: str) -> None:
    with pytest.raises(GateInputError, match="line 1"):
        parse_ignore_file(text)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda doc: doc.update(SchemaVersion=1),
        lambda doc: doc.update(Results={}),
        lambda doc: vulnerabilities(doc)[0].update(Severity="SEVERE"),
        lambda doc: vulnerabilities(doc)[0].pop("VulnerabilityID"),
    ],
)
def test_a_report_the_gate_cannot_judge_is_an_error_not_a_pass(mutate: Any) -> None:
    doc = report("debian-buster")
    mutate(doc)
    with pytest.raises(GateInputError):
        evaluate(doc, today=TODAY)


def test_command_line_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ignore = tmp_path / ".trivyignore"
    ignore.write_text("CVE-2019-14806 pkg:Werkzeug exp:2026-12-01 # werkzeug debugger is disabled in every image\n")
    pip, debian = str(TRIVY / "pip.json"), str(TRIVY / "debian-buster.json")
    assert main([pip, "--ignorefile", str(ignore), "--today", "2026-11-29"]) == 0
    assert main([pip, debian, "--ignorefile", str(ignore), "--today", "2026-11-29"]) == 1
    assert "BLOCKED  CRITICAL vulnerability CVE-2019-18224" in capsys.readouterr().out
    assert main([pip, "--ignorefile", str(ignore), "--today", "2026-12-02"]) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main([str(broken)]) == 2


def test_a_waiver_covers_its_id_only_in_its_package_and_target() -> None:
    doc = report("debian-buster")
    elsewhere = parse_ignore_file("CVE-2019-18224 pkg:libidn11 exp:2026-12-31 # another package\n")
    assert [f.id for f in evaluate(doc, elsewhere, today=TODAY).blocking] == ["CVE-2019-18224"]
    target = doc["Results"][0]["Target"].split()[0]  # an OS target holds spaces; name a lock file's instead
    other_target = parse_ignore_file(f"CVE-2019-18224 pkg:libidn2-0 target:{target} exp:2026-12-31 # not this\n")
    assert not evaluate(doc, other_target, today=TODAY).passed


def test_a_secret_waiver_for_one_file_leaves_the_same_rule_in_another_blocking() -> None:
    doc = report("secrets")
    copied = copy.deepcopy(doc["Results"][0])
    copied["Target"] = "config/production.env"
    doc["Results"].append(copied)
    waiver = parse_ignore_file("aws-access-key-id target:deploy.sh exp:2026-12-31 # a documented example key\n")
    outcome = evaluate(doc, waiver, today=TODAY)
    assert [(f.id, f.target) for f, _ in outcome.waived] == [("aws-access-key-id", "deploy.sh")]
    assert ("aws-access-key-id", "config/production.env") in [(f.id, f.target) for f in outcome.blocking]
    assert not outcome.passed
