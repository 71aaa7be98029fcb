"""Strict data mode: with RAI_MULTI_STRICT_DATA=1 a test needing the real data fails when
the data is absent; without it, the test skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = '''
def test_needs_data(data_dir):
    assert data_dir.is_dir()
'''


def _run(tmp_path: Path, strict: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    conftest = Path(__file__).with_name("conftest.py")
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    env = {"PATH": "/usr/bin:/bin", "RAI_MULTI_DATA": str(tmp_path / "absent"), "PYTHONPATH": str(Path.cwd()),
           "HOME": str(tmp_path)}
    if strict is not None:
        env["RAI_MULTI_STRICT_DATA"] = strict
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


def test_absent_data_skips_by_default_and_fails_when_strict(tmp_path):
    relaxed = _run(tmp_path, None)
    assert relaxed.returncode == 0 and "1 skipped" in relaxed.stdout, relaxed.stdout
    strict = _run(tmp_path, "1")
    # a failing fixture is reported as an error: the run fails (exit 1)
    assert strict.returncode == 1 and "1 error" in strict.stdout and "RAI_MULTI_STRICT_DATA" in strict.stdout
    assert _run(tmp_path, "0").returncode == 0


def test_ci_sets_strict_mode():
    run = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "export RAI_MULTI_STRICT_DATA=1" in run.split("bash scripts/test.sh")[0]
