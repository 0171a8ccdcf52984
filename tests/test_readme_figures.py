"""README's figures hold themselves to account (cheap: parses files, runs nothing).

Every table under README's "## Measured" has a `bound` column and names, in an
`asserted by` column or an "Asserted by `id`" line just above it, the test that
measures the figure and asserts the bound: `benches/...::test_x` (run by `make
bench`) or `tests/...::test_x` (run by `make test`). Each named test must exist
and contain an assert (itself or through a function of its module it calls),
and each number of the bound must be a constant of that test's module, so the
README cannot state one bound while the bench checks another. Every bench test
asserts, none skips (a peer that cannot be set up fails the bench), and every
one is named by some row.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEST_ID = re.compile(r"`((?:benches|tests)/[\w/]+\.py)::(test_\w+)`")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e-?\d+)?")
# A bound's number matches a module constant c when it is c, c in percent or thousandths
# (0.1 of a core = 10%, 0.005 s = 5 ms), or c seconds in minutes.
SCALES = (1, 100, 1000, 1 / 60)


@dataclass(frozen=True)
class Row:
    table: int
    cells: dict[str, str]
    tests: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"table {self.table}: {self.cells.get('figure') or next(iter(self.cells.values()))[:60]!r}"


def measured_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("## Measured")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1:end]


def split_row(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def rows(section: list[str]) -> list[Row]:
    """Every data row of every table in the section, with the test ids that assert it."""
    out: list[Row] = []
    i, table = 0, 0
    while i < len(section):
        if not section[i].startswith("|"):
            i += 1
            continue
        table += 1
        above = next((section[j] for j in range(i - 1, -1, -1) if section[j].strip()), "")
        caption = tuple(TEST_ID.findall(above)) if above.startswith("Asserted by") else ()
        header = [h.lower() for h in split_row(section[i])]
        i += 2  # the header and its |---| line
        while i < len(section) and section[i].startswith("|"):
            cells = dict(zip(header, split_row(section[i]), strict=True))
            tests = tuple(TEST_ID.findall(cells.get("asserted by", ""))) or caption
            out.append(Row(table, cells, tests))
            i += 1
    return out


README_ROWS = rows(measured_section(README.read_text()))


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Module-level functions and methods of module-level classes, by name."""
    found: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({n.name: n for n in node.body if isinstance(n, ast.FunctionDef)})
    return found


def asserts(name: str, funcs: dict[str, ast.FunctionDef], seen: frozenset[str] = frozenset()) -> bool:
    """The function asserts, itself or through a function of its module that it calls."""
    fn = funcs[name]
    if any(isinstance(n, ast.Assert) for n in ast.walk(fn)):
        return True
    called = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(fn)
              if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}
    return any(c in funcs and c not in seen and asserts(c, funcs, seen | {name}) for c in called)


def constants(tree: ast.Module) -> set[float]:
    """Every numeric literal of the module, and the values of its module-level NAME = expression."""
    values = {float(n.value) for n in ast.walk(tree)
              if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)}
    names: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = eval(compile(ast.Expression(node.value), "<bound>", "eval"), {"__builtins__": {}}, names)
            except Exception:
                continue
            names[node.targets[0].id] = value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.add(float(value))
    return values


def number(text: str) -> float:
    return float(text.replace(",", ""))


def bound_numbers(bound: str) -> list[float]:
    """The numbers of a bound, leaving out what is in parentheses (a gloss such as "(1 h)")."""
    return [number(m) for m in NUMBER.findall(re.sub(r"\([^)]*\)", "", bound))]


def matches(value: float, known: set[float]) -> bool:
    return any(abs(value - c * s) <= 1e-9 * max(1.0, abs(value)) for c in known for s in SCALES)


def parse(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text())


def test_the_measured_section_has_its_tables() -> None:
    assert len({r.table for r in README_ROWS}) >= 6
    assert len(README_ROWS) >= 30


@pytest.mark.parametrize("row", README_ROWS, ids=str)
def test_each_figure_names_a_test_that_asserts_its_bound(row: Row) -> None:
    assert row.cells.get("bound"), f"{row}: no bound (a figure states what it must stay within)"
    assert row.tests, f"{row}: names no test (an `asserted by` cell, or an 'Asserted by' line above)"
    for path, name in row.tests:
        assert (ROOT / path).is_file(), f"{row}: {path} does not exist"
        tree = parse(path)
        funcs = functions(tree)
        assert name in funcs, f"{row}: {path} has no {name}"
        assert asserts(name, funcs), f"{row}: {path}::{name} asserts nothing"
    known = set().union(*(constants(parse(path)) for path, _ in row.tests))
    missing = [n for n in bound_numbers(row.cells["bound"]) if not matches(n, known)]
    assert not missing, f"{row}: the bound's {missing} is no constant of {[p for p, _ in row.tests]}"


BENCH_TESTS = sorted(
    (str(path.relative_to(ROOT)), fn.name)
    for path in (ROOT / "benches").rglob("test_*.py")
    for fn in functions(ast.parse(path.read_text())).values() if fn.name.startswith("test_"))


@pytest.mark.parametrize(("path", "name"), BENCH_TESTS, ids=lambda v: str(v))
def test_every_bench_asserts_and_is_in_the_readme(path: str, name: str) -> None:
    assert asserts(name, functions(parse(path))), f"{path}::{name} asserts nothing"
    named = {t for row in README_ROWS for t in row.tests}
    assert (path, name) in named, f"{path}::{name} measures no figure of README's Measured section"


@pytest.mark.parametrize("path", sorted({p for p, _ in BENCH_TESTS}))
def test_no_bench_skips(path: str) -> None:
    """A bench whose peer, tool or privilege is missing fails, so `make bench` cannot pass without measuring."""
    skips = [f"line {n.lineno}" for n in ast.walk(parse(path))
             if isinstance(n, ast.Attribute) and n.attr in ("skip", "skipif", "importorskip", "xfail")]
    assert not skips, f"{path} skips ({', '.join(skips)})"


def test_the_checks_catch_what_they_are_for() -> None:
    bad = rows(["Asserted by `benches/x.py::test_y`", "", "| figure | bound |", "|---|---|",
                "| a | ≤ 3 s (1 h) |", "| b | ≥ 2.5x |"])
    assert [r.tests for r in bad] == [(("benches/x.py", "test_y"),)] * 2
    assert bound_numbers("≤ 3,600 s (1 h); 1e-12") == [3600.0, 1e-12]
    tree = ast.parse("L = 12\nK = L + 1.5\ndef f():\n    g()\ndef g():\n    assert K\ndef h():\n    pass\n")
    assert {12.0, 13.5, 1.5} <= constants(tree)
    funcs = functions(tree)
    assert asserts("f", funcs) and not asserts("h", funcs)
    assert matches(10, {0.1}) and matches(5, {0.005}) and matches(60, {3600}) and not matches(7, {3600})
