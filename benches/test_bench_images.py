"""Image sizes (README, Images): each of the three images as saved for the cluster (the
docker-archive `local up` imports), against its bound and against each other: the
serving image holds onnxruntime and no scikit-learn, so it is well under the trainer's.
Builds the images first when they are not built (root, buildah); part of `make bench`."""

from __future__ import annotations

import os

from modelship import images
from modelship.localcluster import images as builder

MAX_MB = {"operator": 400, "serving": 450, "trainer": 900}
SERVING_MAX_SHARE_OF_TRAINER = 0.7


def test_image_sizes() -> None:
    assert os.geteuid() == 0, "needs root: buildah builds the images (run make bench as root)"
    refs = images.build()
    archives = builder.built_archives()
    sizes = {name: archives[ref].stat().st_size / 1e6 for name, ref in refs.items()}
    share = sizes["serving"] / sizes["trainer"]
    print("\nimage sizes (docker-archive, MB): " + ", ".join(f"{n} {s:.0f} (bound {MAX_MB[n]})"
                                                            for n, s in sizes.items())
          + f"; serving / trainer {share:.2f} (bound {SERVING_MAX_SHARE_OF_TRAINER})")
    for name, size in sizes.items():
        assert size <= MAX_MB[name], f"{name} image {size:.0f} MB"
    assert share <= SERVING_MAX_SHARE_OF_TRAINER
