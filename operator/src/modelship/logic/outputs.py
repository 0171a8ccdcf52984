"""Where a TrainingJob may write its artifact (pure).

Trainer pods of every namespace usually share the store's credentials, so
the operator decides the output location, not the TrainingJob's author: an
artifact goes under ``<store>/<namespace>/``, or under
``<prefix>/<namespace>/`` for a prefix the platform team allow-lists
(``artifacts.allowedOutputPrefixes`` in the chart). A ``spec.outputUri``
anywhere else, or one that climbs out with ``..``, is refused as an invalid
spec, so one namespace can never write where another's models live.
Together with write-once artifacts (``modelship_runtime.artifacts.store``)
no TrainingJob can replace a model another namespace serves.

The default directory is ``<store>/<namespace>/<name>-<uid>/``: the uid of
the object that asked for it (the TrainingJob, or the Model that made it)
keeps a recreated object of the same name from meeting its predecessor's
write-once artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

UID_CHARS = 8


@dataclass(frozen=True)
class OutputDecision:
    """The artifact directory to use, or why there is none (``problem``, for an InvalidSpec condition)."""

    uri: str | None
    problem: str | None = None


def artifact_dir(store: str, namespace: str, name: str, uid: str | None = None) -> str:
    """``<store>/<namespace>/<name>-<uid[:8]>/`` (without the suffix when there is no uid)."""
    suffix = f"-{uid.replace('-', '')[:UID_CHARS]}" if uid else ""
    return f"{store.rstrip('/')}/{namespace}/{name}{suffix}/"


def namespace_prefixes(store: str, allowed: Sequence[str], namespace: str) -> list[str]:
    """The prefixes a TrainingJob in ``namespace`` may write under, each ending in ``/``."""
    out: list[str] = []
    for prefix in [store, *allowed]:
        p = f"{prefix.rstrip('/')}/{namespace}/"
        if p not in out:
            out.append(p)
    return out


def _climbs_out(rest: str) -> bool:
    """Whether the part after the prefix leaves it: `.`/`..` segments (also percent-encoded), empty
    segments, backslashes, or a query or fragment."""
    decoded = unquote(rest)
    if any(c in decoded for c in "?#\\") or "\x00" in decoded:
        return True
    segments = decoded.rstrip("/").split("/")
    return any(s in ("", ".", "..") for s in segments)


def confine_output(
    requested: str | None,
    *,
    store: str,
    allowed_prefixes: Sequence[str],
    namespace: str,
    name: str,
    uid: str | None = None,
) -> OutputDecision:
    """The output directory of TrainingJob ``namespace/name``: ``requested`` (its spec.outputUri) when
    it lies inside one of ``namespace_prefixes``, the default ``artifact_dir`` when it is unset, else a
    problem that says what to do."""
    if not requested:
        return OutputDecision(artifact_dir(store, namespace, name, uid))
    prefixes = namespace_prefixes(store, allowed_prefixes, namespace)
    scheme = urlparse(requested).scheme
    for prefix in prefixes:
        if requested.startswith(prefix) and requested != prefix and urlparse(prefix).scheme == scheme:
            rest = requested[len(prefix):]
            if _climbs_out(rest):
                return OutputDecision(None, f"spec.outputUri {requested} has '.', '..' or empty path segments, "
                                            f"a query or a fragment; write to a plain directory under {prefix}")
            return OutputDecision(requested if requested.endswith("/") else requested + "/")
    where = " or ".join(prefixes)
    return OutputDecision(None, (
        f"spec.outputUri {requested} is outside this namespace's artifact locations ({where}); a TrainingJob "
        f"writes only under <store>/<namespace>/. Leave outputUri unset for the default "
        f"{artifact_dir(store, namespace, name, uid)}, use a directory under {prefixes[0]}, or ask the platform team "
        "to add your prefix to the chart's artifacts.allowedOutputPrefixes (MODELSHIP_ALLOWED_OUTPUT_PREFIXES; "
        "it is confined to <prefix>/<namespace>/ as well)"))


def confine_store(requested: str | None, *, store: str, allowed_prefixes: Sequence[str], namespace: str) -> str | None:
    """Why a Model's ``spec.artifactStore`` cannot be used, or None when it can (or is unset).

    Its TrainingJobs write under ``<artifactStore>/<namespace>/`` and its serving pods log predictions
    under ``<artifactStore>/<namespace>/_groundtruth/<model>/``, so it must be the operator's store or an
    allowed prefix, or lie inside one of this namespace's own locations (``namespace_prefixes``); the
    serving pods, unlike a TrainingJob, are confined by nothing else.
    """
    if not requested:
        return None
    stores = [store, *allowed_prefixes]
    if requested.rstrip("/") in {s.rstrip("/") for s in stores}:
        return None
    prefixes = namespace_prefixes(store, allowed_prefixes, namespace)
    directory = requested.rstrip("/") + "/"
    if any(directory.startswith(p) and not (directory != p and _climbs_out(directory[len(p):])) for p in prefixes):
        return None
    return (f"spec.artifactStore {requested} is not an artifact store of this operator ({', '.join(stores)}) nor "
            f"inside this namespace's locations ({' or '.join(prefixes)}): leave it unset for {store}, name one of "
            "those, or ask the platform team to add it to the chart's artifacts.allowedOutputPrefixes "
            "(MODELSHIP_ALLOWED_OUTPUT_PREFIXES)")
