"""The shipped workflows and the per-workflow checks (tests/e2e/check_<name>.py)."""
from scripts.harness.server import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
