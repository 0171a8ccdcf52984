"""`modelship`: the control-plane CLI. Each subcommand lives in its own module
and is imported only when used, so `modelship local ...` needs no kopf and
`modelship operator` needs no local-cluster code."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help). Each module has main(argv) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("modelship.controllers.main", "run the kopf operator"),
    "local": ("modelship.localcluster.cli", "build, start and stop the local upstream Kubernetes cluster"),
    "kind": ("modelship.kindcluster.cli", "a 3-node kind cluster with Docker and images built here (make e2e-kind)"),
    "demo": ("modelship.demo.run", "show the whole loop on the local cluster"),
    "crds": ("modelship.api.crdgen", "write the CRD YAML generated from the API models"),
    "images": ("modelship.images", "build the project's images (content-tagged) into the local cluster"),
}


def usage() -> str:
    lines = ["usage: modelship <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"modelship: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _ = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("modelship"):
            print(f"modelship {name}: not available in this build yet ({exc.name})", file=sys.stderr)
            return 2
        raise
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
