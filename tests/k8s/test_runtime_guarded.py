"""The per-object lock in ``controllers.runtime.guarded``: a trigger that arrives
while a reconcile runs is not lost but replayed from a fresh read."""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytest.importorskip("kopf")

from modelship.controllers import runtime


@pytest.fixture(autouse=True)
def fake_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_CONTEXT", object())
    runtime.forget("Model", "ns", "m")


def obj(version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "m", "resourceVersion": version}}


def test_trigger_during_a_reconcile_is_replayed_with_a_fresh_read() -> None:
    seen: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def reconcile(_ctx: Any, body: dict[str, Any]) -> None:
        seen.append(body["metadata"]["resourceVersion"])
        if len(seen) == 1:
            inside.set()
            assert release.wait(5)

    first = threading.Thread(target=runtime.guarded, args=("Model", reconcile, obj("1"), lambda ns, n: obj("3")))
    first.start()
    assert inside.wait(5)
    runtime.guarded("Model", reconcile, obj("2"), lambda ns, n: obj("3"))  # busy: remembered, returns at once
    assert seen == ["1"]
    release.set()
    first.join(5)
    assert seen == ["1", "3"]  # replayed once, from the fresh read


def test_no_trigger_no_rerun_and_deleted_objects_are_skipped() -> None:
    seen: list[str] = []
    runtime.guarded("Model", lambda _c, b: seen.append(b["metadata"]["resourceVersion"]), obj("1"),
                    lambda ns, n: obj("9"))
    assert seen == ["1"]
    gone = obj("2")
    gone["metadata"]["deletionTimestamp"] = "2026-11-23T00:00:00Z"
    runtime.guarded("Model", lambda _c, b: seen.append("x"), gone)
    assert seen == ["1"]


def test_resync_due() -> None:
    assert runtime.due("Model", "ns", "m", 300)  # never reconciled
    runtime.guarded("Model", lambda _c, _b: None, obj("1"))
    assert not runtime.due("Model", "ns", "m", 300)
    assert runtime.due("Model", "ns", "m", 0)


def test_refresh_decides_from_a_fresh_read_not_kopfs_copy() -> None:
    seen: list[str] = []
    runtime.guarded("Model", lambda _c, b: seen.append(b["metadata"]["resourceVersion"]), obj("4"),
                    lambda ns, n: obj("7"), refresh=True)
    assert seen == ["7"]
    runtime.guarded("Model", lambda _c, b: seen.append("x"), obj("5"), lambda ns, n: None, refresh=True)
    assert seen == ["7"]  # gone meanwhile: nothing to do
