"""Artifact store: file:// and s3:// round trips, ordering, integrity, http reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelship_runtime.artifacts import store
from modelship_runtime.artifacts.metadata import (
    METADATA_FILE,
    MODEL_FILE,
    Feature,
    InputMode,
    Metadata,
    Output,
)


def _metadata() -> Metadata:
    return Metadata(
        task="binary",
        features=[Feature(name="x", type="numeric", dtype="double")],
        input_mode=InputMode.TENSOR,
        tensor_input="input",
        outputs=[Output(name="label", role="label")],
        model_sha256="",
    )


def _roundtrip(uri: str, tmp_path: Path) -> None:
    model = b"\x08\x07fake-onnx-bytes"
    digest = store.write_artifact(uri, model, _metadata())
    assert digest == store.sha256_hex(model)
    meta = store.read_metadata(uri)
    assert meta.model_sha256 == digest and meta.tensor_input == "input"
    assert store.read_model(uri) == model
    assert store.read_model(uri, expected_sha256=digest.upper()) == model
    path = store.fetch_model(uri, tmp_path / "dest", expected_sha256=digest)
    assert path.name == MODEL_FILE and path.read_bytes() == model
    with pytest.raises(store.IntegrityError, match="differs from the expected"):
        store.read_model(uri, expected_sha256="0" * 64)
    # Overwriting replaces both files consistently.
    digest2 = store.write_artifact(uri, model + b"2", _metadata())
    assert store.read_metadata(uri).model_sha256 == digest2 != digest


def test_file_roundtrip(tmp_path: Path) -> None:
    _roundtrip(f"file://{tmp_path / 'a' / 'b'}", tmp_path)
    assert (tmp_path / "a" / "b" / METADATA_FILE).stat().st_mode & 0o044 == 0o044
    assert not [p for p in (tmp_path / "a" / "b").iterdir() if p.name.startswith(".")]


def test_s3_roundtrip(s3: str, tmp_path: Path) -> None:
    _roundtrip(f"s3://{s3}/models/iris/1", tmp_path)
    with pytest.raises(store.ArtifactNotFound):
        store.read_metadata(f"s3://{s3}/models/none")


def test_metadata_is_written_last_and_removed_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real_write, real_delete = store.write_uri, store.delete_uri
    monkeypatch.setattr(store, "write_uri", lambda u, d: (calls.append(("write", u.rsplit("/", 1)[1])), real_write(u, d)))
    monkeypatch.setattr(store, "delete_uri", lambda u: (calls.append(("delete", u.rsplit("/", 1)[1])), real_delete(u)))
    store.write_artifact(f"file://{tmp_path}", b"m", _metadata())
    assert calls == [("delete", METADATA_FILE), ("write", MODEL_FILE), ("write", METADATA_FILE)]


def test_half_written_artifact_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"model without metadata")
    with pytest.raises(store.ArtifactNotFound):
        store.read_metadata(f"file://{tmp_path}")
    with pytest.raises(store.ArtifactNotFound):
        store.read_model(f"file://{tmp_path}")


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}"
    store.write_artifact(uri, b"original", _metadata())
    (tmp_path / MODEL_FILE).write_bytes(b"changed")
    with pytest.raises(store.IntegrityError):
        store.fetch_model(uri, tmp_path / "dest")
    assert not (tmp_path / "dest" / MODEL_FILE).exists()


def test_bad_metadata_and_schemes(tmp_path: Path) -> None:
    (tmp_path / METADATA_FILE).write_text(json.dumps({"task": "binary"}))
    with pytest.raises(store.ArtifactError, match="not valid metadata"):
        store.read_metadata(f"file://{tmp_path}")
    with pytest.raises(store.ArtifactError, match="unsupported scheme"):
        store.read_uri("ftp://host/file")
    with pytest.raises(store.ArtifactError, match="read-only"):
        store.write_uri("https://127.0.0.1/x", b"")


def test_http_read(http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "data.csv").write_text("a,b\n1,2\n")
    assert store.read_uri(f"{base}/data.csv") == b"a,b\n1,2\n"
    with pytest.raises(store.ArtifactNotFound):
        store.read_uri(f"{base}/absent.csv")
