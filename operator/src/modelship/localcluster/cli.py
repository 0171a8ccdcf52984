"""`modelship local ...`: build, up, down, status, image build/load, third-party crds."""

from __future__ import annotations

import argparse
import sys

from modelship.localcluster.status import StepFailed


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="modelship local", description="the local upstream Kubernetes cluster")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build or reuse the binaries and system images (cached)")
    b.add_argument("--for", dest="purpose", default="all", choices=["cluster", "demo", "all", "bench"],
                   help="what to build: the cluster alone, plus helm (demo), plus prometheus (all: the tests), "
                        "plus Argo Rollouts (bench)")
    up = sub.add_parser("up", help="start the cluster (foreground until Ctrl-C, or --detach)")
    up.add_argument("--kubeconfig", help="where to write the admin kubeconfig (default DATA_DIR/kubeconfig)")
    up.add_argument("--data-dir", help="state and logs (default ~/.local/share/modelship/local)")
    up.add_argument("--detach", action="store_true", help="return once ready; stop with `modelship local down`")
    up.add_argument("--retain", action="store_true", help="keep what was started when start-up fails")
    down = sub.add_parser("down", help="stop a cluster and remove what it made")
    down.add_argument("--data-dir")
    st = sub.add_parser("status", help="processes, loaded images, pods that lack an image")
    st.add_argument("--data-dir")
    img = sub.add_parser("image", help="build or load images without a registry")
    isub = img.add_subparsers(dest="image_cmd", required=True)
    ib = isub.add_parser("build", help="buildah build of a Dockerfile, loaded into the running cluster")
    ib.add_argument("-t", "--tag", required=True, help="NAME:TAG (`latest` is refused)")
    ib.add_argument("-f", "--file", help="Dockerfile (default CONTEXT/Dockerfile)")
    ib.add_argument("--target")
    ib.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    ib.add_argument("--data-dir")
    ib.add_argument("context")
    il = isub.add_parser("load", help="import an OCI or docker archive into the running cluster")
    il.add_argument("archive")
    il.add_argument("--data-dir")
    crds = sub.add_parser("crds", help="third-party CRDs from their Go modules (Prometheus Operator, Gateway API)")
    csub = crds.add_subparsers(dest="crds_cmd", required=True)
    for verb, help_ in (("install", "apply them to the running cluster"), ("path", "print the cached files")):
        c = csub.add_parser(verb, help=help_)
        c.add_argument("name", choices=["prometheus-operator", "gateway-api"])
        if verb == "install":
            c.add_argument("--data-dir")
            c.add_argument("--kubeconfig", help="default: the local cluster's")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from modelship.localcluster import build, cluster, images, thirdparty

    try:
        if args.cmd == "build":
            return build.build(purpose=args.purpose)
        if args.cmd == "up":
            p = cluster.load_paths(args.data_dir, args.kubeconfig)
            return cluster.up(p, detach=args.detach, retain=args.retain)
        if args.cmd == "down":
            return cluster.down(cluster.load_paths(args.data_dir))
        if args.cmd == "status":
            return cluster.status(cluster.load_paths(args.data_dir))
        if args.cmd == "image" and args.image_cmd == "build":
            bad = [a for a in args.build_arg if "=" not in a]
            if bad:
                raise StepFailed(f"--build-arg wants K=V, got {bad[0]!r}")
            name = images.build_image(args.tag, args.context, args.file, args.target,
                                      dict(a.split("=", 1) for a in args.build_arg),
                                      cluster=cluster.load_paths(args.data_dir))
            print(name)
            return 0
        if args.cmd == "image" and args.image_cmd == "load":
            images.load_archive(args.archive, cluster.load_paths(args.data_dir))
            return 0
        if args.cmd == "crds" and args.crds_cmd == "path":
            for path in thirdparty.crd_files(args.name):
                print(path)
            return 0
        if args.cmd == "crds" and args.crds_cmd == "install":
            kubeconfig = args.kubeconfig or cluster.load_paths(args.data_dir).kubeconfig
            files = thirdparty.install(args.name, kubeconfig)
            print(f"Installed {len(files)} {args.name} CRDs ({thirdparty.source(args.name).version})")
            return 0
    except StepFailed as exc:
        print(f"modelship local {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 2
