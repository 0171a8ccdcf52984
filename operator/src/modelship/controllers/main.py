"""`modelship operator`: run the kopf operator.

Only start-up lives here: flags and settings, kopf's own configuration, the
metrics and health endpoints. The handlers are in one module per kind.
"""

from __future__ import annotations

import argparse
import logging
import sys

from modelship.logic.prometheus_urls import SETTING, BadUrl, allow_list
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

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(settings)


def run(settings: OperatorSettings) -> int:
    """Start the metrics endpoint and kopf; return when kopf stops."""
    import kopf
    from prometheus_client import start_http_server

    from modelship.controllers import handlers, runtime  # import kopf: only when the operator runs
    from modelship.controllers.leader import lead
    from modelship.metrics import REGISTRY

    log = logging.getLogger("modelship")
    try:
        allow_list(settings.prometheus_allowed_urls)
    except BadUrl as exc:
        log.error("Refused to start: %s", exc)
        return 2
    if settings.prometheus_bearer_token_file and not settings.prometheus_allowed_urls:
        log.warning("A Prometheus bearer token is configured and no Prometheus URL may receive it: DriftMonitors "
                    "with source prometheus are refused until prometheus.allowedUrls (%s) lists their URLs", SETTING)
    runtime.start(settings)
    start_http_server(settings.metrics_port, registry=REGISTRY)
    handlers.register_all(settings)
    log.info(
        "Started the Modelship operator (namespaces: %s; metrics on :%d; health on :%d)",
        ", ".join(settings.namespaces) or "all", settings.metrics_port, settings.health_port)
    def act(stop_flag: object) -> None:
        runtime.ACTING.set()
        try:
            kopf.run(clusterwide=not settings.namespaces, namespaces=settings.namespaces, standalone=True,
                     liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
                     stop_flag=stop_flag)  # type: ignore[arg-type]
        finally:
            runtime.ACTING.clear()

    return lead(settings, act)


if __name__ == "__main__":
    sys.exit(main())
