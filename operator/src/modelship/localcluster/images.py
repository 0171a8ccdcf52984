"""Images without a registry: buildah builds (daemonless), a debootstrap base,
and loading into the local cluster's containerd.

Public API for other code (tests, `make images`, the demo):
  build_image(tag, context, dockerfile=None, target=None, build_args=None) -> str
  load_archive(archive, paths=None) and loaded_images(paths=None)
Names are stored fully qualified (docker.io/...), as Kubernetes normalises
them, so a loaded image is found with the default imagePullPolicy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from modelship.localcluster import paths, versions
from modelship.localcluster.paths import ClusterPaths
from modelship.localcluster.status import StepFailed, line, step

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PAUSE_IMAGE = f"docker.io/modelship/local-pause:{versions.KUBERNETES}"
COREDNS_IMAGE = f"docker.io/modelship/local-coredns:{versions.COREDNS}"
LOCAL_PATH_IMAGE = f"docker.io/modelship/local-path-provisioner:{versions.LOCAL_PATH_PROVISIONER}"
HELPER_IMAGE = "docker.io/modelship/local-busybox:1.35"
BUILD_CA = "/etc/ssl/modelship-build-ca.crt"  # the host's CA bundle, mounted read-only during builds


def qualify(name: str) -> str:
    """`web:1` -> docker.io/library/web:1; `x/web:1` -> docker.io/x/web:1; refuses `latest` and no tag."""
    repo, _, tag = name.rpartition(":")
    if not repo or "/" in tag:
        raise StepFailed(f"{name!r} has no tag: give NAME:TAG (a tag is required)")
    if tag == "latest":
        raise StepFailed(f"{name!r}: `latest` is refused (its pull policy is Always); use a version tag")
    first = repo.split("/")[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = f"docker.io/{repo}"
    return f"{repo}:{tag}"


def _store() -> Path:
    return paths.cache_root() / "buildah"


def buildah(*args: str, capture: bool = False, check: bool = True) -> str:
    argv = ["buildah", "--root", str(_store() / "root"), "--runroot", str(_store() / "runroot"),
            "--storage-driver", "overlay", *args]
    res = subprocess.run(argv, check=False, text=True, capture_output=capture)
    if check and res.returncode != 0:
        raise StepFailed(f"buildah {args[0]} failed ({res.returncode}): {(res.stderr or '').strip()[-800:]}")
    return res.stdout or ""


def has_image(name: str) -> bool:
    res = subprocess.run(
        ["buildah", "--root", str(_store() / "root"), "--runroot", str(_store() / "runroot"),
         "--storage-driver", "overlay", "inspect", "--type", "image", name],
        capture_output=True, check=False,
    )
    return res.returncode == 0


def image_id(name: str) -> str:
    return buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", name, capture=True).strip()


def from_files(name: str, files: dict[str, Path], entrypoint: list[str] | None, symlinks: dict[str, str],
               env: dict[str, str] | None = None) -> None:
    """An image FROM scratch holding `files` (dest -> host path); no RUN, so no runtime needed."""
    ctr = buildah("from", "scratch", capture=True).strip()
    try:
        root = Path(buildah("mount", ctr, capture=True).strip())
        for dest, src in files.items():
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        for link, to in symlinks.items():
            target = root / link.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(to)
        (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
        args = []
        if entrypoint:
            args += ["--entrypoint", json.dumps(entrypoint)]
        for k, v in (env or {}).items():
            args += ["--env", f"{k}={v}"]
        if args:
            buildah("config", *args, ctr)
        buildah("commit", "--quiet", ctr, name, capture=True)
    finally:
        buildah("rm", ctr, capture=True, check=False)


def ensure_system_images() -> None:
    """pause, CoreDNS, local-path-provisioner and its busybox helper, from the built binaries."""
    busybox = Path("/bin/busybox")
    specs: list[tuple[str, dict[str, Path], list[str] | None, dict[str, str]]] = [
        (PAUSE_IMAGE, {"/pause": paths.pause_bin()}, ["/pause"], {}),
        (COREDNS_IMAGE, {"/coredns": paths.coredns_bin()}, ["/coredns"], {}),
        (LOCAL_PATH_IMAGE, {"/usr/bin/local-path-provisioner": paths.local_path_bin()}, None, {}),
    ]
    for name, files, entry, links in specs:
        if not has_image(name):
            with step(f"Making image {name}"):
                from_files(name, files, entry, links, {"PATH": "/usr/bin:/bin"})
    if not has_image(HELPER_IMAGE):
        with step(f"Making image {HELPER_IMAGE} (busybox-static)"):
            applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                                     check=True).stdout.split()
            links = {f"/bin/{a}": "busybox" for a in applets if a != "busybox"}
            from_files(HELPER_IMAGE, {"/bin/busybox": busybox}, None, links, {"PATH": "/bin"})


def ensure_base_image() -> None:
    """`FROM debian:bookworm-slim` made locally with debootstrap (a local equivalent, not the registry's bytes)."""
    if has_image(BASE_IMAGE):
        return
    cache = paths.cache_root() / "base" / "debian-bookworm-minbase.tar"
    with step("Making debian:bookworm-slim with debootstrap --variant=minbase (about 80 s, once)"):
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
                rootfs = Path(tmp) / "rootfs"
                res = subprocess.run(
                    ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
                    capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    raise StepFailed(f"debootstrap failed: {res.stdout[-500:]}{res.stderr[-500:]}")
                for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                    for p in (rootfs / junk).glob("*"):
                        if p.is_file():
                            p.unlink()
                with tarfile.open(cache.with_suffix(".part"), "w") as tar:
                    tar.add(rootfs, arcname=".")
                cache.with_suffix(".part").rename(cache)
        ctr = buildah("from", "scratch", capture=True).strip()
        try:
            root = buildah("mount", ctr, capture=True).strip()
            subprocess.run(["tar", "-C", root, "-xpf", str(cache)], check=True)
            buildah("config", "--cmd", "bash", "--env",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ctr)
            buildah("commit", "--quiet", ctr, BASE_IMAGE, capture=True)
        finally:
            buildah("rm", ctr, capture=True, check=False)


def _pip_conf() -> Path:
    """pip inside builds trusts the host's CA bundle (the machine reaches PyPI through it)."""
    conf = paths.cache_root() / "build-pip.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"[global]\ncert = {BUILD_CA}\n")
    return conf


def build_image(tag: str, context: str | Path, dockerfile: str | Path | None = None, target: str | None = None,
                build_args: dict[str, str] | None = None, load: bool = True,
                cluster: ClusterPaths | None = None, record: bool = True) -> str:
    """Build a Dockerfile with buildah, keep an archive, load it into the running local cluster.

    Returns the fully qualified name. Other engineers call this (or
    `modelship local image build`) for serving_image/Dockerfile targets.
    ``record=False`` keeps the archive out of what `local up` loads (kind's images).
    """
    name = qualify(tag)
    ensure_base_image()
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    argv = ["bud", "--layers", "--network", "host", "-t", name]
    if ca.exists():
        # Beside, not over, the image's own bundle: installing ca-certificates must still work.
        argv += ["-v", f"{ca}:{BUILD_CA}:ro", "-v", f"{_pip_conf()}:/etc/pip.conf:ro"]
    if dockerfile:
        argv += ["-f", str(dockerfile)]
    if target:
        argv += ["--target", target]
    for k, v in (build_args or {}).items():
        argv += ["--build-arg", f"{k}={v}"]
    with step(f"Building {name} with buildah{f' (target {target})' if target else ''}"):
        buildah(*argv, str(context))
    archive = save_archive(name, record)
    if load:
        load_if_running(archive, cluster, name)
    return name


def _record() -> Path:
    return paths.cache_root() / "images" / "built.json"


def save_archive(name: str, record: bool = True) -> Path:
    """A docker-archive of `name` in the cache (keyed by image ID), recorded so `local up` loads it
    (unless ``record`` is false)."""
    iid = image_id(name)
    out = paths.cache_root() / "images" / f"{hashlib.sha256(name.encode()).hexdigest()[:12]}-{iid[:12]}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        part = out.with_suffix(".part")
        part.unlink(missing_ok=True)
        buildah("push", "--quiet", name, f"docker-archive:{part}:{name}", capture=True)
        part.rename(out)
    if not record:
        return out
    built = json.loads(_record().read_text()) if _record().exists() else {}
    old = built.get(name)
    if old and old != str(out):
        Path(old).unlink(missing_ok=True)
    built.pop(name, None)
    built[name] = str(out)  # insertion order is age order
    _record().write_text(json.dumps(_prune(built), indent=1))
    return out


KEEP_PER_REPOSITORY = 2


def _prune(record: dict[str, str]) -> dict[str, str]:
    """Keep the newest KEEP_PER_REPOSITORY tags of each repository: content-hash
    tags would otherwise grow the cache (and every `up`'s imports) without bound."""
    kept: dict[str, str] = {}
    per_repo: dict[str, int] = {}
    for name, archive in reversed(list(record.items())):
        repo = name.rpartition(":")[0]
        per_repo[repo] = per_repo.get(repo, 0) + 1
        if per_repo[repo] <= KEEP_PER_REPOSITORY:
            kept[name] = archive
        else:
            Path(archive).unlink(missing_ok=True)
    return dict(reversed(list(kept.items())))


def built_archives() -> dict[str, Path]:
    if not _record().exists():
        return {}
    return {k: Path(v) for k, v in json.loads(_record().read_text()).items() if Path(v).exists()}


def ctr(cluster: ClusterPaths, *args: str, capture: bool = True) -> str:
    res = subprocess.run(["ctr", "--address", str(cluster.containerd_sock), "-n", "k8s.io", *args],
                         capture_output=capture, text=True, check=False)
    if res.returncode != 0:
        raise StepFailed(f"ctr {' '.join(args[:2])} failed: {(res.stderr or '').strip()[-500:]}")
    return res.stdout or ""


def load_archive(archive: str | Path, cluster: ClusterPaths | None = None) -> None:
    """Import an OCI or docker archive into the local cluster's containerd (k8s.io namespace)."""
    from modelship.localcluster import procs

    cluster = cluster or ClusterPaths.make()
    if procs.running_pid(cluster, "containerd") is None:
        raise StepFailed(f"the local cluster is not running (no {cluster.containerd_sock}); run `modelship local up`")
    ctr(cluster, "images", "import", str(archive))


def imported_record(cluster: ClusterPaths) -> Path:
    """name -> archive of what we imported into this cluster's containerd (it outlives `down`)."""
    return cluster.containerd_root / "modelship-imported.json"


def note_imported(cluster: ClusterPaths, name: str, archive: Path) -> None:
    record = imported_record(cluster)
    done = json.loads(record.read_text()) if record.exists() else {}
    done[name] = str(archive)
    record.write_text(json.dumps(done, indent=1))


def load_if_running(archive: Path, cluster: ClusterPaths | None = None, name: str | None = None) -> None:
    from modelship.localcluster import procs

    cluster = cluster or ClusterPaths.make()
    if procs.running_pid(cluster, "containerd") is not None:
        start = time.monotonic()
        load_archive(archive, cluster)
        if name:
            note_imported(cluster, name, archive)
        line(f" ✓ Loaded {archive.name} into the local cluster ({time.monotonic() - start:.1f}s)")


def system_archives() -> dict[str, Path]:
    out = {}
    for name in (PAUSE_IMAGE, COREDNS_IMAGE, LOCAL_PATH_IMAGE, HELPER_IMAGE):
        out[name] = save_archive(name)
    return out


def loaded_images(cluster: ClusterPaths | None = None) -> list[str]:
    cluster = cluster or ClusterPaths.make()
    return [n for n in ctr(cluster, "images", "ls", "-q").split() if not n.startswith("sha256:")]
