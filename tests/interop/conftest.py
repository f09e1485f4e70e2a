"""Fixtures for the interop tests (see harness.py for the building blocks).

- `interop_root`: one run directory per session under /tmp (mode 0755 so that the ejabberd
  user can enter it). Removed at the end unless a test failed or WADDLE_INTEROP_KEEP=1
  (only the flood records, flood-results.jsonl, are always kept); its path is printed at
  the end. The flood tests' counts are also printed there as a table.
- `ca`: the session's PrivateCA.
- `federation`: a fresh harness.Federation per test (own dnsmasq, own addresses), torn down
  by a finalizer whatever the test's outcome. When a test fails, the tails of all its logs
  are attached to the report.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# tests/system/crowd.py's shared room assertions report like the tests' own
pytest.register_assert_rewrite("crowd")

import harness  # noqa: E402


def _preflight() -> str | None:
    if os.geteuid() != 0:
        return "interop tests need root (unshare -m, mount --bind, runuser)"
    for tool in (harness.DNSMASQ, harness.PROSODY, harness.PROSODYCTL, harness.EJABBERDCTL):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="session")
def interop_root(request):
    problem = _preflight()
    if problem:
        pytest.skip(problem)
    root = harness.make_run_root()
    request.config._interop_root = root
    yield root
    keep = os.environ.get("WADDLE_INTEROP_KEEP") == "1" or request.session.testsfailed
    if not keep:
        results = getattr(request.config, "_flood_results_path", None)
        if results is not None and results.exists():
            # the flood records outlive the run directory's other contents
            for entry in root.iterdir():
                if entry != results:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ca(interop_root):
    return harness.PrivateCA(interop_root / "ca")


@pytest.fixture
def federation(request, interop_root, ca):
    name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    fed = harness.Federation(interop_root / name, ca)
    request.node._interop_federation = fed
    request.addfinalizer(fed.close)
    return fed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    fed = getattr(item, "_interop_federation", None)
    if fed is not None and report.failed:
        report.sections.append(("interop logs", fed.logs()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = getattr(config, "_flood_rows", None)
    if rows:
        import flood
        terminalreporter.write_sep("=", "flood: counts per scenario")
        for line in flood.table(rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"records: {config._flood_results_path}")
    root = getattr(config, "_interop_root", None)
    if root is not None:
        state = "kept" if root.exists() else "removed"
        if root.exists() and [p.name for p in root.iterdir()] == ["flood-results.jsonl"]:
            state = "removed but for flood-results.jsonl"
        terminalreporter.write_line(f"interop run directory ({state}): {root}")
