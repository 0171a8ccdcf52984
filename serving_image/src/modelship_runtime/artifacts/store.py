"""Artifact store: read and write ``model.onnx`` + ``metadata.json`` under a URI.

The trainer writes artifacts; the server and the operator read them. Stores:
``file://`` (a mounted volume) and ``s3://`` (any S3-compatible endpoint, set
through the usual AWS variables, including ``AWS_ENDPOINT_URL``). ``http(s)://``
is readable only (datasets).

Artifacts are write-once: each file is created only where nothing is
(a hard link of a complete temp file on disk; a conditional PUT,
``If-None-Match: *``, on S3), never replaced. Writing the same model again
(a retried trainer) is fine and keeps what is there; a different model
where one exists is refused with :class:`ArtifactExists`, so no writer can
swap the model a revision serves. ``metadata.json`` is written last, so a
reader that finds metadata finds the model it describes. Readers check the
model's sha256 against the metadata (or a digest the caller trusts more,
such as the one in a TrainingJob's status) and refuse a mismatch.

On S3 the conditional PUT is the guard; before it a HEAD looks for an
existing object, which is all that protects a store that ignores
``If-None-Match`` (S3-compatible stores without conditional writes; a
writer racing another between the HEAD and the PUT could then still
replace it). AWS S3, MinIO and moto honour it.

API::

    write_artifact(uri, model_bytes, metadata) -> str            # sha256 of model; write-once
    read_metadata(uri) -> Metadata
    read_model(uri, expected_sha256=None) -> bytes                # verified
    fetch_model(uri, dest_dir, expected_sha256=None) -> Path      # verified copy
    read_uri(uri) -> bytes                                        # any file URI
    list_uri(prefix) -> list[str]                                 # files under a prefix, sorted
    sha256_hex(data) -> str
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from modelship_runtime.artifacts.metadata import METADATA_FILE, MODEL_FILE, Metadata

HTTP_TIMEOUT_SECONDS = 60.0


class ArtifactError(Exception):
    """A store could not be read or written."""


class ArtifactNotFound(ArtifactError):
    """Nothing at the URI (for an artifact: no metadata.json, so not complete)."""


class IntegrityError(ArtifactError):
    """The model's sha256 differs from the one expected: never serve it."""


class ArtifactExists(ArtifactError):
    """A different artifact is already at the URI: artifacts are write-once."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def join(uri: str, name: str) -> str:
    """The URI of ``name`` inside the artifact directory ``uri``."""
    return uri.rstrip("/") + "/" + name


_CLIENTS: dict[tuple[str | None, ...], Any] = {}


def _s3_client() -> Any:
    import boto3  # only the images that use S3 pay for the import

    # boto3 reads AWS_ENDPOINT_URL, credentials and AWS_REGION itself; S3
    # needs some region to sign with, and S3-compatible stores accept any.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # A client takes tens of milliseconds to make and is thread-safe: the server's log
    # writer and the quality Job make many calls, so one is kept per configuration.
    key = (region, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID"),
           os.environ.get("AWS_SECRET_ACCESS_KEY"))
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = boto3.client("s3", region_name=region)
    return client


def _s3_location(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ArtifactError(f"{uri}: an s3:// URI needs a bucket, as in s3://bucket/path")
    return parsed.netloc, parsed.path.lstrip("/")


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    # file:///abs/path and file://relative/path (netloc taken as the first part)
    return Path(unquote(parsed.netloc + parsed.path))


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    if scheme not in ("file", "s3", "http", "https"):
        raise ArtifactError(f"{uri}: unsupported scheme {scheme!r}; use file://, s3:// or http(s)://")
    return scheme


def read_uri(uri: str) -> bytes:
    """The bytes of one file at a file://, s3:// or http(s):// URI."""
    scheme = _scheme(uri)
    if scheme == "file":
        path = _file_path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(f"{uri}: no such file") from None
        except OSError as exc:
            raise ArtifactError(f"{uri}: {exc.strerror or exc}") from exc
    if scheme == "s3":
        bucket, key = _s3_location(uri)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            data: bytes = body.read()
            return data
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ArtifactNotFound(f"{uri}: not found ({code})") from None
            raise ArtifactError(f"{uri}: S3 error {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactError(f"{uri}: {exc}") from exc
    try:
        with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT_SECONDS) as response:
            data = response.read()
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ArtifactNotFound(f"{uri}: HTTP 404") from None
        raise ArtifactError(f"{uri}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ArtifactError(f"{uri}: {exc}") from exc


def list_uri(prefix: str) -> list[str]:
    """URIs of the files under ``prefix`` (recursively), sorted; [] when there are none.

    ``file://`` and ``s3://`` only (an http(s) prefix cannot be listed). Names
    starting with a dot (temporary files of an atomic write) are left out.
    """
    scheme = _scheme(prefix)
    if scheme == "file":
        root = _file_path(prefix)
        if root.is_file():
            return [prefix]
        if not root.is_dir():
            return []
        base = prefix.rstrip("/")
        out = []
        for path in root.rglob("*"):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
                out.append(f"{base}/{path.relative_to(root).as_posix()}")
        return sorted(out)
    if scheme == "s3":
        bucket, key = _s3_location(prefix)
        from botocore.exceptions import BotoCoreError, ClientError

        out = []
        try:
            for page in _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                for obj in page.get("Contents", []):
                    name = obj["Key"]
                    if not name.rsplit("/", 1)[-1].startswith("."):
                        out.append(f"s3://{bucket}/{name}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return []
            raise ArtifactError(f"{prefix}: S3 error {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactError(f"{prefix}: {exc}") from exc
        return sorted(out)
    raise ArtifactError(f"{prefix}: an http(s) location cannot be listed; name a file")


def _write_file_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes 0600; the server pod may run as another user.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_uri(uri: str, data: bytes) -> None:
    """Write one file atomically at a file:// or s3:// URI."""
    scheme = _scheme(uri)
    try:
        if scheme == "file":
            _write_file_atomic(_file_path(uri), data)
        elif scheme == "s3":
            bucket, key = _s3_location(uri)
            _s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        else:
            raise ArtifactError(f"{uri}: http(s) stores are read-only; write to file:// or s3://")
    except ArtifactError:
        raise
    except Exception as exc:  # boto and OS errors alike: the caller needs one kind
        raise ArtifactError(f"{uri}: could not write: {exc}") from exc


def _create_file_once(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists (False then); never a partial or replaced file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the server pod may run as another user.
        try:
            os.link(tmp, path)  # atomic, and fails where a file is
        except FileExistsError:
            return False
        except OSError:
            # A filesystem without hard links: exclusive create, then write. A reader may see the
            # file before it is whole, but metadata.json (written after) vouches for its sha256.
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _create_s3_once(bucket: str, key: str, data: bytes) -> bool:
    from botocore.exceptions import ClientError

    client = _s3_client()
    try:
        client.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") not in ("404", "NoSuchKey", "NotFound"):
            raise
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        # 412: someone created it since the HEAD; 409: a concurrent conditional write is in flight.
        if exc.response.get("Error", {}).get("Code", "") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def create_uri(uri: str, data: bytes) -> bool:
    """Write one file at a file:// or s3:// URI unless one is there; True when this call created it."""
    scheme = _scheme(uri)
    try:
        if scheme == "file":
            return _create_file_once(_file_path(uri), data)
        if scheme == "s3":
            bucket, key = _s3_location(uri)
            return _create_s3_once(bucket, key, data)
        raise ArtifactError(f"{uri}: http(s) stores are read-only; write to file:// or s3://")
    except ArtifactError:
        raise
    except Exception as exc:  # boto and OS errors alike: the caller needs one kind
        raise ArtifactError(f"{uri}: could not write: {exc}") from exc


def delete_uri(uri: str) -> None:
    """Remove one file; absent is fine."""
    scheme = _scheme(uri)
    try:
        if scheme == "file":
            _file_path(uri).unlink(missing_ok=True)
        elif scheme == "s3":
            bucket, key = _s3_location(uri)
            _s3_client().delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise ArtifactError(f"{uri}: could not delete: {exc}") from exc


def _metadata_digest(raw: bytes) -> str | None:
    try:
        return Metadata.model_validate_json(raw).model_sha256
    except ValueError:
        return None


def write_artifact(uri: str, model_bytes: bytes, metadata: Metadata) -> str:
    """Write model.onnx then metadata.json under ``uri``, once; returns the model's sha256.

    ``metadata.model_sha256`` is set to the digest of ``model_bytes``. Where
    the same model is already written (a retry), what is there stays and the
    call succeeds; where another model (or metadata for another model) is,
    :class:`ArtifactExists` is raised and nothing is changed.
    """
    digest = sha256_hex(model_bytes)
    metadata = metadata.model_copy(update={"model_sha256": digest})
    body = json.dumps(metadata.wire(), indent=2, sort_keys=True).encode()
    model_uri, metadata_uri = join(uri, MODEL_FILE), join(uri, METADATA_FILE)
    if not create_uri(model_uri, model_bytes):
        existing = sha256_hex(read_uri(model_uri))
        if existing != digest:
            raise ArtifactExists(
                f"{model_uri} already holds another model (sha256 {existing}, this one {digest}); artifacts are "
                "write-once: write to a new location (a new TrainingJob, or another outputUri)"
            )
    if not create_uri(metadata_uri, body):
        recorded = _metadata_digest(read_uri(metadata_uri))
        if recorded != digest:
            raise ArtifactExists(
                f"{metadata_uri} already describes another model (sha256 {recorded}, this one {digest}); artifacts "
                "are write-once: write to a new location (a new TrainingJob, or another outputUri)"
            )
    return digest


def read_metadata(uri: str) -> Metadata:
    """The artifact's metadata; ArtifactNotFound when the artifact is not complete."""
    raw = read_uri(join(uri, METADATA_FILE))
    try:
        return Metadata.model_validate_json(raw)
    except ValueError as exc:
        raise ArtifactError(f"{join(uri, METADATA_FILE)}: not valid metadata: {exc}") from exc


def read_model(uri: str, expected_sha256: str | None = None) -> bytes:
    """model.onnx's bytes, checked against ``expected_sha256`` or the metadata's digest."""
    if expected_sha256 is None:
        expected_sha256 = read_metadata(uri).model_sha256
    data = read_uri(join(uri, MODEL_FILE))
    actual = sha256_hex(data)
    if actual != expected_sha256.lower():
        raise IntegrityError(
            f"{join(uri, MODEL_FILE)}: sha256 {actual} differs from the expected {expected_sha256}; "
            "the artifact was changed or is incomplete"
        )
    return data


def fetch_model(uri: str, dest_dir: str | Path, expected_sha256: str | None = None) -> Path:
    """Copy a verified model.onnx into ``dest_dir`` and return its path."""
    data = read_model(uri, expected_sha256)
    path = Path(dest_dir) / MODEL_FILE
    _write_file_atomic(path, data)
    return path
