"""make mutation's test selections collect where mutmut runs them: its mutants/ tree holds only pipelines/,
scripts/ and tests/ (a test reading bench/ there stopped the multiref group before a single mutant ran)."""
import subprocess
import sys

from scripts import mutation
from scripts.harness.server import REPO


def test_every_group_selection_collects_in_a_tree_like_mutmuts(tmp_path):
    for folder in ("pipelines", "scripts", "tests", ".comfyui"):
        (tmp_path / folder).symlink_to(REPO / folder)
    selection = []
    for spec in mutation.GROUPS.values():
        for test in spec["tests"]:
            found = [test] if "::" in test else [str(p.relative_to(REPO)) for p in sorted(REPO.glob(test))]
            assert found, f"no test file matches {test}"
            selection += found
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *sorted(set(selection))], cwd=tmp_path, capture_output=True, text=True)  # noqa: S603
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
