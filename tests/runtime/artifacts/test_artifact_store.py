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
    # Write-once: the same model again is fine; another one is refused and changes nothing.
    assert store.write_artifact(uri, model, _metadata()) == digest
    with pytest.raises(store.ArtifactExists, match=r"already holds another model.*write-once"):
        store.write_artifact(uri, model + b"2", _metadata())
    assert store.read_metadata(uri).model_sha256 == digest
    assert store.read_model(uri) == model


def test_file_roundtrip(tmp_path: Path) -> None:
    _roundtrip(f"file://{tmp_path / 'a' / 'b'}", tmp_path)
    assert (tmp_path / "a" / "b" / METADATA_FILE).stat().st_mode & 0o044 == 0o044
    assert not [p for p in (tmp_path / "a" / "b").iterdir() if p.name.startswith(".")]


def test_s3_roundtrip(s3: str, tmp_path: Path) -> None:
    _roundtrip(f"s3://{s3}/models/iris/1", tmp_path)
    with pytest.raises(store.ArtifactNotFound):
        store.read_metadata(f"s3://{s3}/models/none")


def test_metadata_is_written_last_and_nothing_is_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real_create = store.create_uri
    monkeypatch.setattr(store, "create_uri",
                        lambda u, d: (calls.append(("create", u.rsplit("/", 1)[1])), real_create(u, d))[1])
    monkeypatch.setattr(store, "delete_uri", lambda u: calls.append(("delete", u)))
    monkeypatch.setattr(store, "write_uri", lambda u, d: calls.append(("overwrite", u)))
    store.write_artifact(f"file://{tmp_path}", b"m", _metadata())
    assert calls == [("create", MODEL_FILE), ("create", METADATA_FILE)]


# --- Write-once (issue 22, item 3) --------------------------------------------------


def _uri(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return f"file://{tmp_path / 'store' / 'ns' / 'job-1'}"
    return f"s3://{request.getfixturevalue('s3')}/artifacts/ns/job-1"


STORES = ["file", "s3"]


@pytest.mark.parametrize("kind", STORES)
def test_a_retry_with_the_same_model_keeps_what_is_there(kind: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    uri = _uri(kind, tmp_path, request)
    first = _metadata().model_copy(update={"created": "2026-12-03T10:00:00Z"})
    digest = store.write_artifact(uri, b"model-v1", first)
    retry = _metadata().model_copy(update={"created": "2026-12-03T10:05:00Z"})
    assert store.write_artifact(uri, b"model-v1", retry) == digest
    assert store.read_metadata(uri).created == "2026-12-03T10:00:00Z"  # never rewritten


@pytest.mark.parametrize("kind", STORES)
def test_another_model_is_refused_never_overwritten(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uri = _uri(kind, tmp_path, request)
    digest = store.write_artifact(uri, b"stable-model", _metadata())
    with pytest.raises(store.ArtifactExists) as refused:
        store.write_artifact(uri, b"attacker-model", _metadata())
    assert digest in str(refused.value) and store.sha256_hex(b"attacker-model") in str(refused.value)
    assert store.read_model(uri, expected_sha256=digest) == b"stable-model"
    assert store.read_metadata(uri).model_sha256 == digest


@pytest.mark.parametrize("kind", STORES)
def test_a_half_written_artifact_is_completed_only_by_its_own_model(kind: str, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    uri = _uri(kind, tmp_path, request)
    store.create_uri(store.join(uri, MODEL_FILE), b"crashed-before-metadata")
    with pytest.raises(store.ArtifactExists):
        store.write_artifact(uri, b"another-model", _metadata())
    with pytest.raises(store.ArtifactNotFound):
        store.read_metadata(uri)
    digest = store.write_artifact(uri, b"crashed-before-metadata", _metadata())
    assert store.read_metadata(uri).model_sha256 == digest


@pytest.mark.parametrize("kind", STORES)
def test_metadata_for_another_model_is_refused(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uri = _uri(kind, tmp_path, request)
    other = _metadata().model_copy(update={"model_sha256": "f" * 64})
    store.create_uri(store.join(uri, METADATA_FILE), other.model_dump_json(by_alias=True).encode())
    with pytest.raises(store.ArtifactExists, match="describes another model"):
        store.write_artifact(uri, b"model", _metadata())
    assert store.read_metadata(uri).model_sha256 == "f" * 64


def test_s3_conditional_put_is_the_guard(s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the HEAD misses the object (a racing writer), If-None-Match: * refuses the PUT."""
    from botocore.exceptions import ClientError

    uri = f"s3://{s3}/artifacts/ns/job-1"
    digest = store.write_artifact(uri, b"first", _metadata())
    real = store._s3_client

    class Blind:
        def __init__(self) -> None:
            self.client = real()

        def head_object(self, **kw: object) -> None:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

        def __getattr__(self, name: str) -> object:
            return getattr(self.client, name)

    monkeypatch.setattr(store, "_s3_client", Blind)
    with pytest.raises(store.ArtifactExists):
        store.write_artifact(uri, b"second", _metadata())
    monkeypatch.setattr(store, "_s3_client", real)
    assert store.read_model(uri) == b"first" and store.read_metadata(uri).model_sha256 == digest


def test_racing_writers_on_disk_one_wins_whole(tmp_path: Path) -> None:
    import threading

    uri = f"file://{tmp_path / 'race'}"
    models = [f"model-{i}".encode() * 50_000 for i in range(8)]
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(len(models))

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.write_artifact(uri, models[i], _metadata())
            outcomes[i] = "written"
        except store.ArtifactExists:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(models))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [i for i, o in outcomes.items() if o == "written"]
    assert len(outcomes) == len(models) and len(winners) == 1
    assert store.read_model(uri) == models[winners[0]]
    assert not [p for p in (tmp_path / "race").iterdir() if p.name.startswith(".")]


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
