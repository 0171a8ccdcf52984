"""The Alertmanager webhook over HTTP: authenticated always (401 JSON
otherwise, and every post refused when no token is configured), and its
alert book bounded under a flood of authenticated posts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from modelship.controllers import alerts
from modelship.demo.stack import free_port
from modelship.logic.retrain import AlertBook, book_bytes

TOKEN = "s3cr3t-token"


def payload(n: int, start: int = 0, namespace: str = "ml", model: str = "iris") -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "ModelshipDataDrift", "namespace": namespace, "model": model},
         "startsAt": "2026-11-23T11:00:00Z", "fingerprint": f"{start + i:016x}"} for i in range(n)]}


@pytest.fixture(autouse=True)
def fresh_book() -> Iterator[None]:
    alerts.BOOK = AlertBook()
    yield
    alerts.BOOK = AlertBook()


def post_all(token: str | None, requests: list[tuple[dict[str, str], bytes]]) -> list[tuple[int, Any]]:
    """Start the webhook with ``token``, send each (headers, body), stop it; (status, JSON body) per request."""
    async def run() -> list[tuple[int, Any]]:
        port = free_port()
        runner = await alerts.start(port, token)
        out = []
        try:
            async with aiohttp.ClientSession() as session:
                for headers, body in requests:
                    async with session.post(f"http://127.0.0.1:{port}/alerts", data=body, headers=headers) as r:
                        out.append((r.status, await r.json()))
        finally:
            await runner.cleanup()
        return out
    return asyncio.run(run())


BODY = json.dumps(payload(1)).encode()


@pytest.mark.parametrize(("headers", "words"), [
    ({}, "missing or wrong bearer token"),
    ({"Authorization": "Bearer wrong"}, "missing or wrong bearer token"),
    ({"Authorization": TOKEN}, "missing or wrong bearer token"),
    ({"Authorization": f"Basic {TOKEN}"}, "missing or wrong bearer token"),
])
def test_unauthenticated_posts_get_401_json(headers: dict[str, str], words: str) -> None:
    [(status, body)] = post_all(TOKEN, [(headers, BODY)])
    assert status == 401 and words in body["error"]
    assert alerts.BOOK.seen == {}


def test_the_right_token_is_accepted() -> None:
    [(status, body)] = post_all(TOKEN, [({"Authorization": f"Bearer {TOKEN}"}, BODY)])
    assert (status, body) == (200, {"received": 1, "new": 1})
    assert alerts.BOOK.firing


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_configured_token_every_post_is_refused(token: str | None) -> None:
    results = post_all(token, [({}, BODY), ({"Authorization": "Bearer "}, BODY),
                               ({"Authorization": "Bearer anything"}, BODY)])
    assert [s for s, _ in results] == [401, 401, 401]
    assert all("MODELSHIP_WEBHOOK_TOKEN" in b["error"] for _, b in results)
    assert alerts.BOOK.seen == {}


def test_a_flood_of_alerts_does_not_grow_the_book_past_its_bounds() -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    posts = 30
    requests = [(auth, json.dumps(payload(2000, start=i * 2000, namespace=f"ns-{i}")).encode()) for i in range(posts)]
    results = post_all(TOKEN, requests)
    assert all(status == 200 and body["new"] == 2000 for status, body in results)
    book = alerts.BOOK
    assert len(book.seen) == book.max_entries < posts * 2000
    assert book_bytes(book) <= book.max_bytes
    assert book.dropped == posts * 2000 - book.max_entries
