"""The status merge patch: minimal, removes what is gone, empty when nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.k8s.status import merge_patch

CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("same", {"phase": "Serving", "a": {"b": 1}}, {"phase": "Serving", "a": {"b": 1}}, {}),
    ("changed-scalar", {"phase": "Training"}, {"phase": "Serving"}, {"phase": "Serving"}),
    ("removed-key", {"phase": "Serving", "canaryRevision": "m-x"}, {"phase": "Serving"}, {"canaryRevision": None}),
    ("nested", {"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, {"a": {"c": 3}}),
    ("list-replaced-whole", {"h": [1, 2]}, {"h": [1, 2, 3]}, {"h": [1, 2, 3]}),
    ("new-key", {}, {"url": "http://m"}, {"url": "http://m"}),
]


@pytest.mark.parametrize(("case", "old", "new", "patch"), CASES, ids=[c[0] for c in CASES])
def test_merge_patch(case: str, old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(old, new) == patch


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any], str]] = []

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any],
              subresource: str = "") -> dict[str, Any]:
        self.patches.append((name, patch, subresource))
        return {}


def test_status_is_written_only_on_change_and_only_from_the_version_read() -> None:
    from modelship.k8s.status import write_status

    kube = RecordingKube()
    body = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model",
            "metadata": {"namespace": "ns", "name": "m", "resourceVersion": "42"}, "status": {"phase": "Serving"}}
    assert not write_status(kube, body, {"phase": "Serving"})  # type: ignore[arg-type]
    assert write_status(kube, body, {"phase": "Progressing"})  # type: ignore[arg-type]
    assert kube.patches == [("m", {"metadata": {"resourceVersion": "42"}, "status": {"phase": "Progressing"}},
                             "status")]
