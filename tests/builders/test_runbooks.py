"""Every runbook an alert links to is a page of docs/: the URLs the builders
emit, the ones written into the chart's templates and the docs' examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelship.builders import monitoring

ROOT = Path(__file__).resolve().parents[2]
# Runbook links point at the repository's main branch on GitHub.
BLOB = "https://github.com/modelship/modelship/blob/main/"
URL = re.compile(r"https?://[^\s\"'`)<>]*runbook[^\s\"'`)<>]*")
SOURCES = [*sorted((ROOT / "operator/src/modelship/builders").glob("*.py")),
           *sorted((ROOT / "charts/modelship/templates").glob("*")),
           *sorted((ROOT / "docs").rglob("*.md"))]


def emitted() -> set[str]:
    """The runbook URLs of the objects the builders make, with their defaults."""
    rule = monitoring.build_prometheus_rule("loans", "shop", "loans", threshold=0.2, for_="1m", owner=None)
    return {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]
            if "runbook_url" in r.get("annotations", {})}


def written() -> dict[str, set[str]]:
    """URL → the files that mention it."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        for url in URL.findall(path.read_text()):
            found.setdefault(url, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_drift_rule_links_a_runbook() -> None:
    assert emitted() == {monitoring.DEFAULT_RUNBOOK}


@pytest.mark.parametrize("url", sorted(emitted() | set(written())))
def test_every_runbook_url_is_a_page_in_docs(url: str) -> None:
    assert url.startswith(BLOB + "docs/"), f"{url} is not a page of this repository's docs/ ({written().get(url)})"
    path = ROOT / url.removeprefix(BLOB).split("#")[0]
    assert path.is_file(), f"{url} links {path.relative_to(ROOT)}, which does not exist ({written().get(url)})"


def test_drift_runbook_covers_what_an_on_call_needs() -> None:
    text = (ROOT / "docs/runbooks/drift.md").read_text()
    assert monitoring.ALERT in text
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["What the alert means", "Read the DriftMonitor", "Pause retraining", "Roll back by hand"]
    # The commands it gives use the fields the API has.
    for field in ("action\":{\"retrain\":false", "retrain\":{\"onDrift\":false", "/spec/source", "artifactSha256",
                  "lastTriggeredTrainingJob", "requireAlert"):
        assert field in text, field
