"""The project's images: their names, content-addressed tags, and building them.

A tag is the project version plus a hash of exactly what goes into that
image (the paths its Dockerfile copies, the Dockerfile, pyproject.toml and
constraints.txt), so an
unchanged image reuses what was built and loaded before: operator edits do
not rebuild the data-plane images, data-plane edits outside what the operator
imports do not rebuild the operator's, and what a pod ran is traceable to the
source. ``make images``, the end-to-end tests and the demo all take names
from here.

Because each image has its own tag, ``helm install`` needs three of them:
``build`` and ``values`` write them as a Helm values file
(``out/images-values.yaml``) and print the same as ``--set`` flags, so an
install takes exactly what was built.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from modelship import __version__

ROOT = Path(__file__).resolve().parents[3]
REPOSITORY = "docker.io/modelship"
# What goes into the data-plane images (serving_image/Dockerfile copies exactly these).
_DATA_PLANE = ("pyproject.toml", "constraints.txt", "serving_image", "operator/src/modelship/__init__.py",
               "operator/src/modelship/api")
# What goes into the operator's image (operator/Dockerfile copies exactly these).
_OPERATOR = ("pyproject.toml", "constraints.txt", "operator/Dockerfile", "operator/src/modelship",
             "serving_image/finish-install.sh",
             "serving_image/src/modelship_runtime/__init__.py", "serving_image/src/modelship_runtime/artifacts",
             "serving_image/src/modelship_runtime/drift",
             "serving_image/src/modelship_runtime/groundtruth/__init__.py",
             "serving_image/src/modelship_runtime/groundtruth/layout.py")


@dataclass(frozen=True)
class Image:
    dockerfile: str  # relative to the repo root (the build context)
    target: str | None
    inputs: tuple[str, ...]  # the files and directories the tag hashes


IMAGES: dict[str, Image] = {
    "serving": Image("serving_image/Dockerfile", "serving", _DATA_PLANE),
    "trainer": Image("serving_image/Dockerfile", "trainer", _DATA_PLANE),
    "operator": Image("operator/Dockerfile", "operator", _OPERATOR),
}


def content_hash(name: str, root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for entry in IMAGES[name].inputs:
        base = root / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def reference(name: str, root: Path = ROOT) -> str:
    return f"{REPOSITORY}/{name}:{__version__}-{content_hash(name, root)}"


def references(root: Path = ROOT) -> dict[str, str]:
    return {name: reference(name, root) for name in IMAGES}


# The chart's value that takes each image (charts/modelship/values.yaml).
CHART_KEYS = {"operator": "image", "trainer": "trainer.image", "serving": "serving.image"}
VALUES_FILE = ROOT / "out" / "images-values.yaml"


def split_reference(ref: str) -> tuple[str, str]:
    """docker.io/modelship/operator:0.1.0-abc → (docker.io/modelship/operator, 0.1.0-abc)."""
    repository, _, tag = ref.rpartition(":")
    if not repository or "/" in tag:
        raise ValueError(f"{ref!r} has no tag")
    return repository, tag


def helm_values(refs: dict[str, str]) -> dict[str, dict[str, object]]:
    """The chart values that point it at ``refs`` (name → reference), nested as values.yaml is."""
    out: dict[str, dict[str, object]] = {}
    for name, ref in refs.items():
        repository, tag = split_reference(ref)
        node = out
        *parents, last = CHART_KEYS[name].split(".")
        for key in parents:
            node = node.setdefault(key, {})  # type: ignore[assignment]
        node[last] = {"repository": repository, "tag": tag}
    return out


def set_flags(refs: dict[str, str]) -> list[str]:
    """The same values as ``helm --set`` arguments."""
    flags = []
    for name, ref in refs.items():
        repository, tag = split_reference(ref)
        key = CHART_KEYS[name]
        flags += ["--set", f"{key}.repository={repository}", "--set", f"{key}.tag={tag}"]
    return flags


def write_values(refs: dict[str, str], path: Path = VALUES_FILE) -> Path:
    """Write ``helm_values(refs)`` to ``path`` (JSON is YAML, and needs no YAML library)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `modelship images` for the images it built: helm install ... -f this file\n"
    path.write_text(header + json.dumps(helm_values(refs), indent=2) + "\n")
    return path


def _cluster_running() -> bool:
    from modelship.localcluster.paths import ClusterPaths

    return ClusterPaths.make().containerd_sock.exists()


def build(names: list[str] | None = None, root: Path = ROOT, force: bool = False) -> dict[str, str]:
    """Build (or reuse) and load into the running local cluster; name → reference."""
    from modelship.localcluster import images as builder

    out = {}
    for name in names or list(IMAGES):
        image = IMAGES[name]
        ref = reference(name, root)
        if not (root / image.dockerfile).exists():
            raise FileNotFoundError(f"{image.dockerfile} does not exist")
        archive = builder.built_archives().get(ref)
        if force or archive is None or not builder.has_image(ref):
            builder.build_image(ref, root, dockerfile=root / image.dockerfile, target=image.target,
                                build_args={"VERSION": __version__, "REVISION": content_hash(name, root)})
        elif _cluster_running() and ref not in builder.loaded_images():
            builder.load_if_running(archive)
        out[name] = ref
    return out


def dockerfiles() -> dict[str, tuple[str, str | None]]:
    """name → (Dockerfile, target), for builders other than ours (e.g. `docker build --target`)."""
    return {name: (image.dockerfile, image.target) for name, image in IMAGES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelship images", description="Build the project's images.")
    parser.add_argument("command", choices=["build", "list", "values", "dockerfiles"],
                        help="build (and load), list the references, write the Helm values for them, "
                        "or list name, reference, Dockerfile, target")
    parser.add_argument("names", nargs="*", help=f"images (default: {', '.join(IMAGES)})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    parser.add_argument("--values-file", type=Path, default=VALUES_FILE,
                        help="where build and values write the Helm values (default: out/images-values.yaml)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "dockerfiles":
        for name, (dockerfile, target) in dockerfiles().items():
            print(f"{name}\t{reference(name)}\t{dockerfile}\t{target or ''}")
        return 0
    refs = build(args.names, force=args.force) if args.command == "build" else references()
    for name, ref in refs.items():
        if not args.names or name in args.names:
            print(f"{name}\t{ref}")
    if args.command in ("build", "values"):
        # Always all three: an install needs every image, built now or before.
        every = {**references(), **refs}
        path = write_values(every, args.values_file)
        print(f"Wrote the Helm values for these images to {path}; install with")
        print(f"  helm install modelship charts/modelship -n modelship-system --create-namespace -f {path}")
        print("or pass them as flags:")
        print("  " + " ".join(set_flags(every)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
