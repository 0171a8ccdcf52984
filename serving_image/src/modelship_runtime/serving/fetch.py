"""Bring a model to local disk: an artifact directory or a bare .onnx file.

A URI ending in ``.onnx`` is a bare model (no metadata, so no drift
histograms); anything else is an artifact directory holding model.onnx and,
usually, metadata.json. Local files are read in place (a read-only volume is
fine); remote ones are copied into a fresh directory under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelship_runtime.artifacts.metadata import METADATA_FILE, MODEL_FILE


@dataclass(frozen=True)
class LocalModel:
    model_path: Path
    metadata_path: Path | None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(uri: str, cache_dir: str | None = None) -> LocalModel:
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    bare = parsed.path.endswith(".onnx")
    if scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if scheme else uri)
        return _local(path, bare)
    target = Path(tempfile.mkdtemp(prefix="modelship-model-", dir=cache_dir))
    if scheme == "s3":
        return _s3(parsed.netloc, parsed.path.lstrip("/"), target, bare)
    if scheme in ("http", "https"):
        if not bare:
            raise ValueError(f"an http(s) URI must name a .onnx file: {uri}")
        dest = target / MODEL_FILE
        with urllib.request.urlopen(uri, timeout=60) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out)
        return LocalModel(dest, None)
    raise ValueError(f"unsupported model URI scheme {scheme!r} in {uri}")


def _local(path: Path, bare: bool) -> LocalModel:
    if bare:
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        return LocalModel(path, None)
    model = path / MODEL_FILE
    if not model.is_file():
        raise FileNotFoundError(f"artifact {path} has no {MODEL_FILE}")
    metadata = path / METADATA_FILE
    return LocalModel(model, metadata if metadata.is_file() else None)


def _s3(bucket: str, key: str, target: Path, bare: bool) -> LocalModel:
    import boto3  # only s3:// needs it
    from botocore.exceptions import ClientError

    endpoint = os.environ.get("MODELSHIP_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None
    client = boto3.client("s3", endpoint_url=endpoint)
    if bare:
        dest = target / MODEL_FILE
        client.download_file(bucket, key, str(dest))
        return LocalModel(dest, None)
    prefix = key.rstrip("/")
    client.download_file(bucket, f"{prefix}/{MODEL_FILE}", str(target / MODEL_FILE))
    try:
        client.download_file(bucket, f"{prefix}/{METADATA_FILE}", str(target / METADATA_FILE))
    except ClientError:
        return LocalModel(target / MODEL_FILE, None)
    return LocalModel(target / MODEL_FILE, target / METADATA_FILE)
