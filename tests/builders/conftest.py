"""Validate built manifests against the Kubernetes OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

K8S_VERSION = "1.35"  # the oldest schema we promise; also valid for newer servers


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


Validate = Callable[[dict[str, Any]], None]


@pytest.fixture
def validate() -> Validate:
    """Checks a built-in kind's manifest against the schema (strict: unknown fields fail)."""
    return _validate


OWNER = {
    "apiVersion": "modelship.io/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "0f0e0d0c-0000-4000-8000-000000000001"},
}


@pytest.fixture
def owner() -> dict[str, Any]:
    return OWNER
