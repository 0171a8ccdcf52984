"""`make demo`: show what Modelship does, one line per stage, as a person wants to see it.

Until the operator lands this runs the data plane on the host with the real
commands a TrainingJob pod and a serving pod run: the quickstart Model's
training spec through ``modelship-train``, the artifact through
``modelship-serve``, predictions over both protocols, then normal and shifted
traffic and the drift scores the DriftMonitor will compute from the server's
own histograms. It ends by saying what the cluster loop will add.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelship.demo import data
from modelship.demo.client import http
from modelship.logic.scrape import drift_counts, parse_samples
from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.artifacts.store import read_metadata
from modelship_runtime.drift import stats

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def stage(title: str, streams: bool = False) -> Iterator[None]:
    """One line per stage: what is happening, then a tick (or a cross) and its time.

    ``streams``: the stage prints lines of its own (a build's steps), so its
    title goes on a line of its own first instead of being overwritten."""
    live = sys.stdout.isatty()
    if streams:
        print(f" • {title}", flush=True)
    elif live:
        print(f" • {title} ...", end="", flush=True)
    started = time.monotonic()
    back = "\r\033[K" if live and not streams else ""
    try:
        yield
    except BaseException:
        print(f"{back} ✗ {title} ({time.monotonic() - started:.1f}s)", flush=True)
        raise
    print(f"{back} ✓ {title} ({time.monotonic() - started:.1f}s)", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def training_spec(dataset_uri: str) -> dict[str, Any]:
    """The quickstart Model's training template as a TrainingJob spec, on the local data."""
    model = yaml.safe_load((ROOT / "examples" / "quickstart" / "model.yaml").read_text())
    spec = dict(model["spec"]["training"])
    spec["dataset"] = {**spec["dataset"], "uri": dataset_uri}
    spec["gates"] = model["spec"].get("gates", {})
    spec["search"] = {**spec.get("search", {}), "cvFolds": 3}
    return spec


def drift_scores(metrics_text: str, baseline_text: str | None, meta: Metadata) -> dict[str, float]:
    refs = meta.reference.features
    now = drift_counts(parse_samples(metrics_text), refs)
    before = drift_counts(parse_samples(baseline_text), refs) if baseline_text else {}
    names = sorted(now)
    current = [now[n] - before.get(n, 0) for n in names]
    reference = [np.asarray(refs[n].proportions) for n in names]
    ref_rows, ref_mask = stats.stack(reference)
    cur_rows, cur_mask = stats.stack(current)
    scores = stats.psi(ref_rows, cur_rows, ref_mask & cur_mask)
    return dict(zip(names, (float(s) for s in scores), strict=True))


def send(url: str, rows: list[dict[str, object]], batch: int = 50) -> None:
    for i in range(0, len(rows), batch):
        code, body = http("POST", url, {"instances": rows[i:i + batch]})
        if code != 200:
            raise RuntimeError(f"prediction failed with {code}: {body}")


def run_host_demo(workdir: Path) -> int:
    say("Modelship demo, data plane only: the trainer and the server on this host\n")
    dataset = workdir / "datasets" / "loans.csv"
    artifact = f"file://{workdir}/artifacts/loans-1/"
    with stage("Writing the quickstart dataset (4,000 synthetic loan applications)"):
        dataset.parent.mkdir(parents=True, exist_ok=True)
        dataset.write_bytes(data.to_csv(4000, seed=7))
    spec_file = workdir / "trainingjob.yaml"
    spec_file.write_text(yaml.safe_dump(training_spec(f"file://{dataset}")))
    with stage("Training: pipeline, grid search over LogisticRegression and RandomForest, ONNX, gates"):
        result = subprocess.run([str(BIN / "modelship-train"), "--spec", str(spec_file), "--output", artifact],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"modelship-train exited {result.returncode}:\n{result.stderr[-2000:]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    say(f"   best: {summary['bestEstimator']}  {summary['metric']}={summary['score']:.3f}  "
        f"onnx max delta={summary['onnxMaxDelta']:.1e}  rows={summary['dataset']['rows']}")
    for gate in summary["gates"]:
        say(f"   gate {gate['name']}: {'passed' if gate['passed'] else 'FAILED'} ({gate['message']})")
    meta = read_metadata(artifact)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "modelship-serve"), "--model-uri", artifact, "--model-name", "loans", "--host", "127.0.0.1",
         "--port", str(port), "--grpc-port", "-1", "--expected-sha256", summary["artifact"]["sha256"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        with stage("Serving: modelship-serve checks the sha256, loads model.onnx, warms up"):
            wait_for(lambda: http("GET", f"{base}/v2/health/ready")[0] == 200, 60, "server readiness")
        sample = data.instances(3, seed=99)
        code, v1 = http("POST", f"{base}/v1/models/loans:predict", {"instances": sample})
        say(f"   KServe v1  POST /v1/models/loans:predict → {code} {json.dumps(v1)[:110]}")
        code, v2 = http("GET", f"{base}/v2/models/loans")
        say(f"   OIP v2     GET /v2/models/loans → {code}, inputs: "
            + ", ".join(i["name"] for i in v2.get("inputs", []))[:90])

        url = f"{base}/v1/models/loans:predict"
        with stage("Normal traffic: 1,000 predictions like the training data"):
            send(url, data.instances(1000, seed=1))
        _, normal_text = http("GET", f"{base}/metrics")
        normal = drift_scores(normal_text, None, meta)
        with stage("Shifted traffic: 1,000 predictions from a changed customer base"):
            send(url, data.instances(1000, seed=2, shift=data.DEMO_SHIFT))
        _, shifted_text = http("GET", f"{base}/metrics")
        shifted = drift_scores(shifted_text, normal_text, meta)
        say("   PSI per feature (threshold 0.2), from the server's own histograms on the training bins:")
        for name in sorted(shifted, key=lambda n: -shifted[n]):
            flag = "DRIFT" if shifted[name] >= 0.2 else ("warning" if shifted[name] >= 0.1 else "")
            say(f"     {name:<14} normal {normal[name]:6.3f}   shifted {shifted[name]:6.3f}  {flag}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    say("\nOn the cluster (`make demo`) the operator runs these same commands as pods: a TrainingJob per")
    say("version, a canary per new revision with analysis and rollback, and a DriftMonitor that")
    say("retrains when the scores above cross the threshold.")
    return 0


def run_cluster_demo(workdir: Path, keep: bool) -> int:
    from modelship import images
    from modelship.demo import loop
    from modelship.localcluster import build, testing
    from modelship.localcluster.status import StepFailed

    say("Modelship demo: the whole loop on a local upstream Kubernetes cluster\n")
    timings: dict[str, float] = {}
    # Built (or found in the cache) before the cluster session starts: the build takes the
    # machine's build lock, never the session lock, so a cold build (tens of minutes) cannot
    # race another run's build and does not keep other sessions from the cluster meanwhile.
    # Only what the demo needs: the cluster and helm (the tests' Prometheus is not built).
    try:
        with stage("The local cluster's binaries (a cold build takes 25-75 min on 2 cores; cached after)", streams=True):
            build.build(purpose="demo")
    except StepFailed as exc:
        say(f"`modelship local build --for demo` failed: {exc}")
        return 1
    with testing.session(keep=keep) as cluster:
        say(f"   cluster: KUBECONFIG={cluster.kubeconfig} (node {cluster.node_ip})")
        started = time.monotonic()
        with stage("Building (or reusing) the operator, trainer and serving images", streams=True):
            refs = images.build()
        timings["images"] = time.monotonic() - started
        code = loop.run_loop(cluster, refs, workdir, timings, keep=keep)
        if keep:
            say(f"\nThe cluster keeps running: export KUBECONFIG={cluster.kubeconfig}; "
                "stop it with `modelship local down`.")
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship demo", description="Show the Modelship loop.")
    parser.add_argument("--workdir", help="keep the demo's files here (default: a temporary directory)")
    parser.add_argument("--host-only", action="store_true",
                        help="only the data plane on this host (trainer and server, no cluster)")
    parser.add_argument("--keep", action="store_true", help="leave the local cluster running afterwards")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run = run_host_demo if args.host_only else (lambda w: run_cluster_demo(w, args.keep))
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return run(Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="modelship-demo-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
