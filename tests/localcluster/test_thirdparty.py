"""Third-party CRD sources: pinned in versions.py, and only CRD files taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship.localcluster import thirdparty, versions
from modelship.localcluster.status import StepFailed


def test_sources_use_the_pinned_versions() -> None:
    assert thirdparty.source("prometheus-operator").version == versions.PROMETHEUS_OPERATOR
    assert thirdparty.source("gateway-api").version == versions.GATEWAY_API
    assert thirdparty.source("gateway-api").cache_dir.name == f"gateway-api-{versions.GATEWAY_API}"
    with pytest.raises(StepFailed, match="known: prometheus-operator, gateway-api"):
        thirdparty.source("istio")


@pytest.mark.parametrize(("text", "expected"), [
    ("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec:\n  enum:\n  - =\n", True),
    ("kind: CustomResourceDefinition\n---\nkind: CustomResourceDefinition\n", True),
    ("kind: ValidatingAdmissionPolicy\n---\nkind: ValidatingAdmissionPolicyBinding\n", False),
    ("kind: CustomResourceDefinition\n---\nkind: ValidatingAdmissionPolicy\n", False),
    ("# only a comment\n", False),
])
def test_is_crd_reads_top_level_kinds_only(tmp_path: Path, text: str, expected: bool) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    assert thirdparty.is_crd(path) is expected
