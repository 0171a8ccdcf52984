"""Bring a model to local disk: an artifact directory or a bare .onnx file.

A URI ending in ``.onnx`` is a bare model (no metadata, so no drift
histograms); anything else is an artifact directory holding model.onnx and,
usually, metadata.json. Local files are read in place (a read-only volume is
fine); remote ones (``s3://``, ``http(s)://``, read through the shared artifact
store) are copied into a fresh directory under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from modelship_runtime.artifacts import store
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
        path = Path(urllib.parse.unquote(parsed.netloc + parsed.path) if scheme else uri)
        return _local(path, bare)
    if scheme not in ("s3", "http", "https"):
        raise ValueError(f"unsupported model URI scheme {scheme!r} in {uri}")
    if scheme != "s3" and not bare:
        raise ValueError(f"an http(s) URI must name a .onnx file: {uri}")
    # Remote: copy into a fresh writable directory (the root filesystem may be read-only).
    target = Path(tempfile.mkdtemp(prefix="modelship-model-", dir=cache_dir))
    model = target / MODEL_FILE
    if bare:
        model.write_bytes(store.read_uri(uri))
        return LocalModel(model, None)
    model.write_bytes(store.read_uri(store.join(uri, MODEL_FILE)))
    try:
        metadata_bytes = store.read_uri(store.join(uri, METADATA_FILE))
    except store.ArtifactNotFound:
        return LocalModel(model, None)
    metadata = target / METADATA_FILE
    metadata.write_bytes(metadata_bytes)
    return LocalModel(model, metadata)


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
