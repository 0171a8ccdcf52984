"""MODELSHIP_CLUSTER_TESTS: known values choose which cluster tests run; any other
value stops the run with a usage error instead of skipping every cluster test
while pytest exits 0. Runs the real tests/conftest.py in a pytester session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
TESTS = """
import pytest

@pytest.mark.cluster
def test_needs_a_cluster():
    pass

def test_pure():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("MODELSHIP_CLUSTER_TESTS", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    cluster: needs a cluster\n")
    pytester.makepyfile(test_flag=TESTS)
    return pytester


@pytest.mark.parametrize(("value", "passed", "skipped"), [
    (None, 1, 1),
    ("", 1, 1),
    ("0", 1, 1),
    ("1", 2, 0),
    ("all", 2, 0),
    ("local", 1, 1),  # local runs tests/localcluster only
])
def test_known_values_choose_what_runs(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                       value: str | None, passed: int, skipped: int) -> None:
    if value is not None:
        monkeypatch.setenv("MODELSHIP_CLUSTER_TESTS", value)
    result = project.runpytest()
    result.assert_outcomes(passed=passed, skipped=skipped)


@pytest.mark.parametrize("value", ["yes", "true", "ALL", " 1", "2", "locals"])
def test_an_unknown_value_is_a_usage_error(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                           value: str) -> None:
    monkeypatch.setenv("MODELSHIP_CLUSTER_TESTS", value)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*MODELSHIP_CLUSTER_TESTS={value!r} is not one of*"])
    result.stdout.no_fnmatch_line("*passed*")


def test_zero_turns_cluster_tests_off_even_with_kubeconfig(project: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    assert project.runpytest().parseoutcomes() == {"passed": 2}
    monkeypatch.setenv("MODELSHIP_CLUSTER_TESTS", "0")
    project.runpytest().assert_outcomes(passed=1, skipped=1)
