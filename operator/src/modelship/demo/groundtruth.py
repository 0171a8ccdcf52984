"""The demo's ground-truth stage: logged predictions, late labels, live accuracy, a retrain on production data.

After the drift stage, the quickstart DriftMonitor gets a ``performance``
section (``examples/ground-truth/driftmonitor.yaml``). The traffic keeps
every request id the server returns; a label pipeline thread delivers the
true outcome for part of it, late: most as CSV files dropped into the store
every few seconds, some through ``POST /v2/models/loans/feedback``. Then the
outcomes change while the inputs do not (a changed concept): live accuracy
falls below the floor, the monitor retrains the Model on the labelled
production rows of its window, and the new version goes through the canary.
"""

from __future__ import annotations

import csv
import io
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelship.demo import data
from modelship.demo.client import http
from modelship.demo.stack import S3

LABELS_PREFIX = "labels/loans/"
LABEL_SHARE = 0.6  # of the traffic ever gets a label
LABEL_DELAY_SECONDS = 8.0
FEEDBACK_SHARE = 0.25  # of the labels come through the feedback endpoint, the rest as files


@dataclass
class LabelledTraffic:
    """Predictions through the Service that remember their request ids, and a label pipeline."""

    url: str
    s3: S3
    shift: data.Shift = data.DEMO_SHIFT
    sent: int = 0
    failed: int = 0
    labels_sent: int = 0
    files: int = 0
    _pending: list[tuple[float, str, int, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _predict(self) -> None:
        seed, rng = 5000, random.Random(3)
        while not self._stop.is_set():
            seed += 1
            rows = list(data.rows(10, seed=seed, shift=self.shift, missing=0.0))
            instances = [{k: v for k, v in r.items() if k != data.TARGET} for r in rows]
            code, body = http("POST", self.url, {"instances": instances})
            if code == 200 and isinstance(body, dict) and body.get("id"):
                self.sent += len(rows)
                with self._lock:
                    for j, r in enumerate(rows):
                        if rng.random() < LABEL_SHARE:
                            self._pending.append((time.monotonic(), str(body["id"]), j, int(str(r[data.TARGET]))))
            else:
                self.failed += 1
            time.sleep(0.1)

    def _deliver(self) -> None:
        feedback_url = self.url.replace("/v1/", "/v2/").replace(":predict", "") + "/feedback"
        rng = random.Random(4)
        while not self._stop.wait(4.0):
            cutoff = time.monotonic() - LABEL_DELAY_SECONDS
            with self._lock:
                due = [p for p in self._pending if p[0] <= cutoff]
                self._pending = [p for p in self._pending if p[0] > cutoff]
            if not due:
                continue
            posted = [p for p in due if rng.random() < FEEDBACK_SHARE]
            filed = [p for p in due if p not in posted]
            if posted:
                code, _ = http("POST", feedback_url, {"labels": [{"id": i, "row": j, "label": y}
                                                                 for _, i, j, y in posted]})
                if code == 200:
                    self.labels_sent += len(posted)
            if filed:
                buf = io.StringIO()
                writer = csv.writer(buf)
                writer.writerow(["request_id", "row", "label"])
                writer.writerows((i, j, y) for _, i, j, y in filed)
                self.files += 1
                self.s3.put(f"{LABELS_PREFIX}batch-{self.files:05d}.csv", buf.getvalue().encode())
                self.labels_sent += len(filed)

    def start(self) -> LabelledTraffic:
        for target in (self._predict, self._deliver):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


def _quality_line(perf: dict[str, Any]) -> str:
    parts = []
    for r in perf.get("revisions", [])[:3]:
        value = f"{r['value']:.3f}" if r.get("value") is not None else "n/a"
        est = f", estimated {r['estimated']:.3f}" if r.get("estimated") is not None else ""
        parts.append(f"{r['revision']}: accuracy {value} on {r.get('labelled', 0)} labelled of "
                     f"{r.get('rows', 0)}{est} ({r.get('state')})")
    return "; ".join(parts) or "no measurement yet"


def run_stage(k: Any, watcher: Any, url: str, s3: S3, root: Path, timings: dict[str, float],
              stage: Callable[[dict[str, float], str, float], None], namespace: str, model: str,
              say: Callable[[str], None]) -> dict[str, Any]:
    """The ground-truth stage; returns what the summary shows (``say`` prints a line of the demo)."""
    say("\n▶ kubectl apply -f examples/ground-truth/driftmonitor.yaml (live accuracy: floor 0.9 on late labels)")
    say(f"   The demo's retrain cooldown is shortened to 1m: kubectl patch model {model} (the example says 10m)")
    k.run("patch", "model", model, "-n", namespace, "--type", "merge", "-p",
          '{"spec": {"retrain": {"cooldown": "1m"}}}')
    k.run("apply", "-n", namespace, "-f", str(root / "examples" / "ground-truth" / "driftmonitor.yaml"))
    traffic = LabelledTraffic(url, s3).start()
    out: dict[str, Any] = {}

    def perf() -> dict[str, Any]:
        st = (k.json("get", "driftmonitor", model, "-n", namespace) or {}).get("status") or {}
        return dict(st.get("performance") or {})

    try:
        t = time.monotonic()
        stable = watcher.model().get("stableRevision")
        healthy = _wait(lambda: (p := perf()).get("state") == "Healthy" and p, 300, "a first Healthy verdict",
                        watcher, perf)
        stage(timings, "labels → live accuracy per revision", t)
        out["healthy"] = healthy
        say(f"   Live quality: {_quality_line(healthy)}")
        say("\n▶ The outcomes change (same applicants, new repayment behaviour): labels show it, inputs do not")
        traffic.shift = data.Shift(income_sd=data.DEMO_SHIFT.income_sd, debt_ratio_sd=data.DEMO_SHIFT.debt_ratio_sd,
                                   region_weights=data.DEMO_SHIFT.region_weights, concept=1.0)
        t = time.monotonic()
        dropped = _wait(lambda: (p := perf()).get("lastTriggeredTrainingJob") and p, 420,
                        "the performance retrain", watcher, perf)
        stage(timings, "changed outcomes → Degraded → retrain", t)
        out["dropped"] = dropped
        say(f"   Live quality: {_quality_line(dropped)}")
        tj = k.json("get", "trainingjob", dropped["lastTriggeredTrainingJob"], "-n", namespace) or {}
        prod = tj.get("spec", {}).get("dataset", {}).get("production", {})
        say(f"   TrainingJob {dropped['lastTriggeredTrainingJob']} (trigger performance) trains on the labelled "
            f"production rows between {prod.get('start')} and {prod.get('end')}")
        t = time.monotonic()
        st = watcher.wait(lambda s: s.get("stableRevision") not in (None, stable) and not s.get("canaryRevision"),
                          900, "the version retrained on production data to be promoted")
        stage(timings, "retrain on production rows → promoted", t)
        tj = k.json("get", "trainingjob", dropped["lastTriggeredTrainingJob"], "-n", namespace) or {}
        out["dataset"] = (tj.get("status") or {}).get("dataset")
        new = st["stableRevision"]
        after = _wait(lambda: (p := perf()) and any(r["revision"] == new and r.get("labelled", 0) >= 200
                                                    for r in p.get("revisions", [])) and p, 300,
                      "live accuracy of the new version", watcher, perf)
        out["after"] = after
        say(f"   Live quality: {_quality_line(after)}")
        out["status"] = st
    finally:
        traffic.stop()
    say(f"   labelled traffic: {traffic.sent} predictions, {traffic.labels_sent} labels "
        f"({traffic.files} files + feedback), {traffic.failed} failed requests")
    return out


def _wait(check: Callable[[], Any], timeout: float, what: str, watcher: Any, perf: Callable[[], dict[str, Any]]) -> Any:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        watcher.poll()
        got = check()
        if got:
            return got
        line = _quality_line(perf())
        if line != last:
            watcher.note(f"gt/{line}", f"Live quality: {line}")
            last = line
        time.sleep(3)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


def summary_lines(out: dict[str, Any]) -> list[str]:
    lines = ["Live accuracy (labels joined with logged predictions):"]
    for key, title in (("healthy", "before the change"), ("dropped", "outcomes changed"),
                       ("after", "after the retrain on production data")):
        if key in out:
            lines.append(f"  {title:<40} {_quality_line(out[key])}")
    if out.get("dataset"):
        d = out["dataset"]
        where = f" from {d['uri']}" if d.get("uri") else ""
        lines.append(f"  trained on {d.get('rows')} labelled production rows{where} "
                     f"(sha256 {str(d.get('sha256'))[:12]})")
    return lines
