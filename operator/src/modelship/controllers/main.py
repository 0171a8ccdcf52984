"""`modelship operator`: run the kopf operator.

Only start-up lives here: flags and settings, kopf's own configuration, the
metrics and health endpoints. The handlers are in one module per kind.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modelship.settings import OperatorSettings


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="modelship operator", description="Run the Modelship operator.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable); default: MODELSHIP_NAMESPACES or all")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    p.add_argument("--metrics-port", type=int, help="port of /metrics (default 8080)")
    p.add_argument("--health-port", type=int, help="port of /healthz (default 8081)")
    p.add_argument("--webhook-port", type=int, help="port of the Alertmanager webhook /alerts (default 8082)")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=None,
                   help="act only while holding the leader Lease (default: MODELSHIP_LEADER_ELECTION or off)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespaces"] = args.namespace
    if args.all_namespaces:
        overrides["namespaces"] = []
    if args.leader_elect is not None:
        overrides["leader_election"] = args.leader_elect
    for flag in ("metrics_port", "health_port", "webhook_port"):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    os.environ["MODELSHIP_RUNTIME_SETTINGS"] = settings.model_dump_json()

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from modelship.controllers import runtime  # imports kopf and registers the handlers

    return runtime.run(settings)


if __name__ == "__main__":
    sys.exit(main())
