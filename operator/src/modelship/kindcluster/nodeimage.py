"""kind's base and node images, built here (there is no registry to pull them from).

The base image is built with buildah (as `make images` builds ours) from the
debootstrap Debian the local cluster already makes, kind's own files from its
Go module, Debian's containerd/runc/CNI plugins and crictl from its module
(``config.base_dockerfile``), then loaded into Docker. The node image is
made the way ``kind build node-image`` makes one: a container of the base
image gets kubeadm, kubelet and kubectl in /usr/bin and the control-plane
images imported into its containerd, and is committed. Both are tagged with
a hash of everything that goes in, so a warm run finds them in Docker and
builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from modelship.kindcluster import config
from modelship.kindcluster.dockerhost import state_dir
from modelship.localcluster import addons, build, images, paths, versions
from modelship.localcluster.status import StepFailed, line, step

BASE_REPOSITORY = "docker.io/modelship/kind-base"
NODE_REPOSITORY = "docker.io/modelship/kind-node"
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
STORAGE_PATH = "/var/local-path-provisioner"


def _docker(*args: str, timeout: float = 600, stdin_file: Path | None = None, text: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """``docker ARGS``, fed a file or a text on stdin."""
    if stdin_file is not None:
        with open(stdin_file, "rb") as fh:
            raw = subprocess.run(["docker", *args], stdin=fh, capture_output=True, timeout=timeout, check=False)
        res = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                          raw.stderr.decode(errors="replace"))
    else:
        res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
                             input=text, stdin=None if text is not None else subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise StepFailed(f"docker {' '.join(args[:2])} failed ({res.returncode}): "
                         f"{(res.stderr or res.stdout).strip()[-800:]}")
    return res


def docker_has(image: str) -> bool:
    return _docker("image", "inspect", image, check=False, timeout=60).returncode == 0


def _sha256_file(path: Path, digest: hashlib._Hash) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)


def _hash_tree(root: Path, digest: hashlib._Hash) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        _sha256_file(path, digest)


def kind_module_dir() -> Path:
    """kind's module source (the one `go install sigs.k8s.io/kind@KIND` built), from the module cache."""
    go = build.find_go()
    res = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kind@{versions.KIND}"],
                         env=build.go_env(go), capture_output=True, text=True, timeout=600, check=False,
                         cwd=tempfile.gettempdir())
    try:
        info = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise StepFailed(f"go mod download sigs.k8s.io/kind@{versions.KIND} failed: {res.stderr[-500:]}") from None
    if "Dir" not in info:
        raise StepFailed(f"go mod download sigs.k8s.io/kind@{versions.KIND}: {info.get('Error')}")
    return Path(info["Dir"])


def _archive_dir() -> Path:
    d = state_dir() / "images"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _docker_load(archive: Path) -> None:
    _docker("load", "-q", "-i", str(archive), timeout=900)


# --- the base image ---------------------------------------------------------------------------------------


def ensure_base_image() -> str:
    """kind's base image in Docker (built with buildah when its inputs changed); its reference."""
    images.ensure_base_image()
    crictl = build.ensure_target("crictl")
    files = kind_module_dir() / "images" / "base" / "files"
    dockerfile = config.base_dockerfile(images.BASE_IMAGE)
    digest = hashlib.sha256(dockerfile.encode())
    digest.update(images.image_id(images.BASE_IMAGE).encode())
    _hash_tree(files, digest)
    _sha256_file(crictl, digest)
    ref = f"{BASE_REPOSITORY}:{versions.KIND}-{digest.hexdigest()[:10]}"
    if docker_has(ref):
        line(f" ✓ kind base image {ref} (cached)")
        return ref
    archive = _archive_dir() / f"kind-base-{digest.hexdigest()[:10]}.tar"
    if not archive.exists():
        with tempfile.TemporaryDirectory(dir=state_dir()) as tmp:
            context = Path(tmp)
            shutil.copytree(files, context / "files")
            shutil.copy2(crictl, context / "crictl")
            (context / "Dockerfile").write_text(dockerfile)
            images.build_image(ref, context, load=False, record=False)
        built = images.save_archive(ref, record=False)
        built.rename(archive)
    with step(f"Loading {ref} into Docker"):
        _docker_load(archive)
    return ref


# --- the control-plane images ----------------------------------------------------------------------------


def ensure_system_images() -> dict[str, Path]:
    """Every image the node's containerd must hold before kubeadm runs (we have no registry);
    name -> docker-archive."""
    images.ensure_system_images()
    binaries = {t.name: t.output for t in build.targets()}
    out: dict[str, Path] = {}
    for image in config.system_images():
        if not images.has_image(image.name):
            with step(f"Making image {image.name}"):
                images.from_files(image.name, {image.path: binaries[image.binary]},
                                  list(image.entrypoint) or None, {}, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
        out[image.name] = images.save_archive(image.name, record=False)
    proxy = config.kube_proxy_image()
    if not images.has_image(proxy):
        with tempfile.TemporaryDirectory(dir=state_dir()) as tmp:
            context = Path(tmp)
            shutil.copy2(paths.kube_bin("kube-proxy"), context / "kube-proxy")
            (context / "Dockerfile").write_text(config.KUBE_PROXY_DOCKERFILE.format(debian_image=images.BASE_IMAGE))
            images.build_image(proxy, context, load=False, record=False)
    out[proxy] = images.save_archive(proxy, record=False)
    for name in (images.PAUSE_IMAGE, images.LOCAL_PATH_IMAGE, images.HELPER_IMAGE):
        out[name] = images.save_archive(name, record=False)
    return out


def storage_manifest() -> str:
    """kind's default StorageClass: the local cluster's local-path-provisioner manifests."""
    return yaml.safe_dump_all(addons.storage_manifests(STORAGE_PATH), sort_keys=False)


# --- the node image --------------------------------------------------------------------------------------


def ensure_node_image(base: str) -> str:
    """The node image for KUBERNETES on ``base``, built in Docker when its inputs changed; its reference."""
    binaries = {name: build.ensure_target(name) if name == "kubeadm" else paths.kube_bin(name)
                for name in NODE_BINARIES}
    archives = ensure_system_images()
    manifest = storage_manifest()
    digest = hashlib.sha256(f"{base}\0{versions.KUBERNETES}\0{manifest}".encode())
    for name in NODE_BINARIES:
        digest.update(name.encode())
        _sha256_file(binaries[name], digest)
    for name, archive in sorted(archives.items()):
        digest.update(f"{name}\0{archive.name}\0".encode())  # archive names carry the image ID
    ref = f"{NODE_REPOSITORY}:{versions.KUBERNETES}-{digest.hexdigest()[:10]}"
    if docker_has(ref):
        line(f" ✓ kind node image {ref} (cached)")
        return ref
    with step(f"Building the node image {ref} (kubeadm, kubelet, kubectl; {len(archives)} images)"):
        _build_node(base, ref, binaries, archives, manifest)
    return ref


def _build_node(base: str, ref: str, binaries: dict[str, Path], archives: dict[str, Path], manifest: str) -> None:
    name = f"modelship-kind-build-{int(time.time())}"
    _docker("run", "-d", "--name", name, "--entrypoint", "sleep", "--security-opt", "seccomp=unconfined",
            "--network", "none", base, "infinity")
    try:
        for binary, src in binaries.items():
            _docker("cp", str(src), f"{name}:/usr/bin/{binary}")
            _docker("exec", name, "chmod", "0755", f"/usr/bin/{binary}")
        _docker("exec", "-i", name, "sh", "-c", "mkdir -p /kind/manifests && cat > /kind/version",
                text=versions.KUBERNETES)
        _docker("exec", "-i", name, "sh", "-c", f"cat > {config.STORAGE_MANIFEST}", text=manifest)
        _docker("exec", name, "bash", "-c", "nohup containerd > /var/log/containerd-build.log 2>&1 &")
        deadline = time.monotonic() + 60
        while _docker("exec", name, "ctr", "version", check=False, timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                log = _docker("exec", name, "cat", "/var/log/containerd-build.log", check=False).stdout
                raise StepFailed(f"containerd in the build container did not start: {log[-800:]}")
            time.sleep(0.5)
        for archive in sorted(archives.values()):
            _docker("exec", "-i", name, "ctr", "--namespace=k8s.io", "images", "import",
                    "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", "--digests", "-",
                    stdin_file=archive, timeout=900)
        listed = _docker("exec", name, "ctr", "--namespace=k8s.io", "images", "list", "-q").stdout.split()
        missing = [image for image in archives if image not in listed]
        if missing:
            raise StepFailed(f"images missing in the node image after import: {missing}")
        _docker("exec", name, "pkill", "containerd")
        for _ in range(50):
            if _docker("exec", name, "pgrep", "-x", "containerd", check=False).returncode != 0:
                break
            time.sleep(0.2)
        _docker("exec", name, "rm", "-rf", "/var/log/containerd-build.log", "/tmp/*")
        _docker("commit", "--change", 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]',
                "--change", 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""', name, ref, timeout=900)
    finally:
        _docker("rm", "-f", "-v", name, check=False)
