"""Under CI a missing optional dependency must fail the run, not skip quietly."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
SKIPPING = "import pytest\n\ndef test_needs_missing():\n    pytest.importorskip('recompose_no_such_module')\n"


def _run(tmp_path, ci: str) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = dict(os.environ, CI=ci)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_under_ci(tmp_path):
    run = _run(tmp_path, "true")
    assert run.returncode == 1, run.stdout
    assert "1 failed" in run.stdout and "skipped under CI" in run.stdout


def test_a_skip_stays_a_skip_outside_ci(tmp_path):
    run = _run(tmp_path, "")
    assert run.returncode == 0, run.stdout
    assert "1 skipped" in run.stdout
