"""`modelship kind ...`: the kind cluster this machine can run (`make e2e-kind`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from modelship.kindcluster import session
from modelship.localcluster.status import StepFailed, line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="modelship kind", description="kind with Docker and images built here")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e2e = sub.add_parser("e2e", help="set up, run tests/e2e on 3 nodes, tear down, check the host (make e2e-kind)")
    e2e.add_argument("--name", default=session.DEFAULT_NAME)
    e2e.add_argument("--keep", action="store_true", help="leave the cluster and dockerd running at the end")
    e2e.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    up = sub.add_parser("up", help="bring the cluster up and hold it (and the machine lock) until Ctrl-C")
    up.add_argument("--name", default=session.DEFAULT_NAME)
    up.add_argument("--workers", type=int, default=session.WORKERS)
    down = sub.add_parser("down", help="delete the cluster, stop the dockerd we started, clean the host")
    down.add_argument("--name", default=session.DEFAULT_NAME)
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.cmd == "e2e":
            rest = [a for a in args.pytest_args if a != "--"]
            return session.run_e2e(rest, name=args.name, keep=args.keep)
        if args.cmd == "up":
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            with session.session(args.name, workers=args.workers):
                line("Holding the cluster; Ctrl-C (or SIGTERM) deletes it")
                while not stop.wait(1.0):
                    pass
            return 0
        if args.cmd == "down":
            session.teardown(args.name)
            return 0
    except StepFailed as exc:
        print(f"modelship kind {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 2
