"""The project's images: their names, content-addressed tags, and building them.

A tag is the project version plus a hash of exactly what goes into the
images (the data plane's sources, ``modelship.api``, the Dockerfile,
pyproject.toml), so an unchanged data plane reuses what was built and loaded
before (operator edits do not rebuild them), and what a pod ran is traceable
to the source. ``make images``, the end-to-end tests and the demo
all take names from here.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from modelship import __version__

ROOT = Path(__file__).resolve().parents[3]
REPOSITORY = "docker.io/modelship"
# image name → (Dockerfile relative to the repo root, build target)
IMAGES: dict[str, tuple[str, str | None]] = {
    "serving": ("serving_image/Dockerfile", "serving"),
    "trainer": ("serving_image/Dockerfile", "trainer"),
}
# What goes into the data-plane images (serving_image/Dockerfile copies exactly these).
_INPUTS = ("pyproject.toml", "serving_image", "operator/src/modelship/__init__.py",
           "operator/src/modelship/api")


def content_hash(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for entry in _INPUTS:
        base = root / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def reference(name: str, root: Path = ROOT) -> str:
    return f"{REPOSITORY}/{name}:{__version__}-{content_hash(root)}"


def references(root: Path = ROOT) -> dict[str, str]:
    return {name: reference(name, root) for name in IMAGES}


def _cluster_running() -> bool:
    from modelship.localcluster.paths import ClusterPaths

    return ClusterPaths.make().containerd_sock.exists()


def build(names: list[str] | None = None, root: Path = ROOT, force: bool = False) -> dict[str, str]:
    """Build (or reuse) and load into the running local cluster; name → reference."""
    from modelship.localcluster import images as builder

    out = {}
    for name in names or list(IMAGES):
        dockerfile, target = IMAGES[name]
        ref = reference(name, root)
        if not (root / dockerfile).exists():
            raise FileNotFoundError(f"{dockerfile} does not exist")
        archive = builder.built_archives().get(ref)
        if force or archive is None or not builder.has_image(ref):
            builder.build_image(ref, root, dockerfile=root / dockerfile, target=target,
                                build_args={"VERSION": __version__, "REVISION": content_hash(root)})
        elif _cluster_running() and ref not in builder.loaded_images():
            builder.load_if_running(archive)
        out[name] = ref
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship images", description="Build the project's images.")
    parser.add_argument("command", choices=["build", "list"], help="build (and load), or list the references")
    parser.add_argument("names", nargs="*", help=f"images (default: {', '.join(IMAGES)})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    refs = build(args.names, force=args.force) if args.command == "build" else references()
    for name, ref in refs.items():
        if not args.names or name in args.names:
            print(f"{name}\t{ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
