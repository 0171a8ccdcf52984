"""Image tags: each hashes exactly what its Dockerfile copies, so an operator
edit retags only the operator and a serving edit only the data plane."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelship import images

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of everything any image hashes."""
    for entry in sorted({i for image in images.IMAGES.values() for i in image.inputs}):
        src, dst = ROOT / entry, tmp_path / entry
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    return tmp_path


# (case, file touched) → images whose tag changes
EDITS = [
    ("operator-controller", "operator/src/modelship/controllers/model.py", {"operator"}),
    ("operator-dockerfile", "operator/Dockerfile", {"operator"}),
    ("operator-api", "operator/src/modelship/api/model.py", {"operator", "serving", "trainer"}),
    ("server", "serving_image/src/modelship_runtime/serving/cli.py", {"serving", "trainer"}),
    ("trainer", "serving_image/src/modelship_runtime/training/cli.py", {"serving", "trainer"}),
    ("drift-stats", "serving_image/src/modelship_runtime/drift/stats.py", {"operator", "serving", "trainer"}),
    ("pyproject", "pyproject.toml", {"operator", "serving", "trainer"}),
    ("constraints", "constraints.txt", {"operator", "serving", "trainer"}),
]


@pytest.mark.parametrize(("case", "path", "changed"), EDITS, ids=[e[0] for e in EDITS])
def test_an_edit_retags_only_the_images_holding_it(tree: Path, case: str, path: str, changed: set[str]) -> None:
    before = images.references(tree)
    assert len(set(before.values())) == len(before)
    with (tree / path).open("a") as fh:
        fh.write("\n# edited\n")
    after = images.references(tree)
    assert {name for name in before if before[name] != after[name]} == changed


def _copied(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile COPYs (not --from another stage)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_every_copied_path_is_hashed(name: str) -> None:
    image = images.IMAGES[name]
    assert image.dockerfile in image.inputs or any(image.dockerfile.startswith(i + "/") for i in image.inputs)
    for source in _copied(ROOT / image.dockerfile):
        source = source.rstrip("/")
        assert any(source == i or source.startswith(i + "/") for i in image.inputs), (name, source)


# --- The Helm values `make images` writes (issue 22, item 13) -------------------

REFS = {"operator": "docker.io/modelship/operator:0.1.0-aaaaaaaaaa",
        "trainer": "docker.io/modelship/trainer:0.1.0-bbbbbbbbbb",
        "serving": "registry.example:5000/team/serving:0.1.0-cccccccccc"}


def _chart_images(values: dict[str, object]) -> dict[str, str]:
    """The references the chart makes of ``values`` (its modelship.image helper: repository:tag)."""
    from modelship.chart.values import Values

    v = Values.model_validate(values)
    return {name: f"{image.repository}:{image.tag}"
            for name, image in (("operator", v.image), ("trainer", v.trainer.image), ("serving", v.serving.image))}


def test_values_file_names_exactly_the_built_references(tmp_path: Path) -> None:
    import yaml

    path = images.write_values(REFS, tmp_path / "out" / "images-values.yaml")
    assert _chart_images(yaml.safe_load(path.read_text())) == REFS


def test_set_flags_say_the_same(tmp_path: Path) -> None:
    flags = images.set_flags(REFS)
    assert flags[::2] == ["--set"] * (len(flags) // 2)
    values: dict[str, object] = {}
    for pair in flags[1::2]:
        key, _, value = pair.partition("=")
        node = values
        *parents, last = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})  # type: ignore[assignment]
        node[last] = value
    assert _chart_images(values) == REFS


def test_images_values_command_writes_the_current_references(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    path = tmp_path / "v.yaml"
    assert images.main(["values", "--values-file", str(path)]) == 0
    refs = images.references()
    assert len(set(refs.values())) == 3  # three tags: one TAG for all could never be right
    assert _chart_images(yaml.safe_load(path.read_text())) == refs
    out = capsys.readouterr().out
    assert f"-f {path}" in out
    assert " ".join(images.set_flags(refs)) in out


def test_helm_doc_installs_with_the_written_values() -> None:
    doc = (ROOT / "docs" / "helm.md").read_text()
    assert "TAG" not in doc, "docs/helm.md still installs the local images with one TAG"
    assert "-f out/images-values.yaml" in doc


def test_the_operator_image_holds_every_data_plane_module_the_operator_imports() -> None:
    """The operator image copies only some of ``modelship_runtime``: an import of another
    data-plane module fails the image build (or worse, the operator at run time)."""
    import ast
    import re

    copied = [m.group(1) for m in re.finditer(r"(serving_image/src/modelship_runtime/\S+)",
                                              (ROOT / "operator" / "Dockerfile").read_text())]
    imported = set()
    for path in (ROOT / "operator" / "src" / "modelship").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelship_runtime."):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("modelship_runtime.")}
    assert imported
    missing = []
    for module in sorted(imported):
        rel = "serving_image/src/" + module.replace(".", "/")
        if not any(c.rstrip("/") in (rel, rel + ".py") or (c.endswith("/") and rel.startswith(c)) for c in copied):
            missing.append(module)
    assert not missing, f"imported by the operator, not copied by operator/Dockerfile: {missing}"
