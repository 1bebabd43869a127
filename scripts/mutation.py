"""Mutation testing of the core maths with mutmut: ``make mutation`` (or ``--only NAME``).

Each module group runs in a scratch copy of the tracked files, so mutmut's ``mutants/`` tree
and its config never touch the checkout. Only lines the group's tests cover are mutated.
Prints ``mutation_score_<group>: killed/total`` per group, then ``mutation_score: ...`` overall.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# group -> (modules mutated, test files run against them, pytest -k filter or None). Only lines the
# selected tests cover are mutated, so a filter also picks which part of a module is the maths under test.
GROUPS = {
    "multiref": (["pipelines/multiref/attention.py", "pipelines/multiref/fusion.py",
                  "pipelines/multiref/comfy_patch.py"], ["tests/unit/test_multiref*.py"], None),
    "selfie_inpaint": (["pipelines/selfie_inpaint/blending.py", "pipelines/selfie_inpaint/pipeline.py"],
                       ["tests/unit/test_selfie_inpaint.py"], "blending or step_by_step or dilation or loop_keeps"),
    "inverse_painting": (["pipelines/inverse_painting/renderer.py", "pipelines/inverse_painting/reference.py"],
                         ["tests/unit/test_painting_renderer*.py", "tests/unit/test_painting_branches*.py"], None),
    "motion": (["pipelines/motion/retrieval.py", "pipelines/motion/imu.py"],
               ["tests/unit/test_motion_maths.py", "tests/unit/test_motion_imu.py"], None),
    "undistort": (["pipelines/undistort/geometry.py", "pipelines/undistort/warp.py"],
                  ["tests/unit/test_undistort.py", "tests/unit/test_undistort_geometry.py"], None),
    "aligntok": (["pipelines/aligntok/losses.py"], ["tests/unit/test_aligntok_losses.py"], None),
    "portrait": (["pipelines/portrait_edit/guidance.py", "pipelines/portrait_edit/mask.py",
                  "pipelines/portrait_edit/adapter.py", "pipelines/portrait_edit/pairs.py"],
                 ["tests/unit/test_portrait_maths.py", "tests/unit/test_portrait_pairs.py"], None),
}
SCRATCH = Path(os.environ.get("RECOMPOSE_MUTATION_DIR", "/tmp/recompose-mutation"))
RESULT = re.compile(r"^\s*(\S+): (\w[\w ]*)$")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def scratch_copy(name: str, modules: list[str], tests: list[str], keyword) -> Path:
    work = SCRATCH / name
    shutil.rmtree(work, ignore_errors=True)
    for rel in tracked_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    selection = [str(p.relative_to(work)) for pattern in tests for p in sorted(work.glob(pattern))]
    if keyword:
        selection += ["-k", keyword]
    config = {"source_paths": ["pipelines"], "only_mutate": modules, "also_copy": ["scripts"],
              "pytest_add_cli_args_test_selection": selection, "process_isolation": "forkserver",
              "mutate_only_covered_lines": True}
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    pyproject = work / "pyproject.toml"
    pyproject.write_text("\n".join(lines) + "\n\n" + pyproject.read_text())
    return work


def run_group(name: str, children: int) -> tuple[int, int, list[str]]:
    modules, tests, keyword = GROUPS[name]
    missing = [m for m in modules if not (REPO / m).exists()]
    if missing:
        raise SystemExit(f"mutation group {name}: missing {missing}")
    work = scratch_copy(name, modules, tests, keyword)
    mutmut = [sys.executable, "-m", "mutmut"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run(mutmut + ["run", "--max-children", str(children)], cwd=work, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise SystemExit(f"mutmut run failed for {name}:\n{run.stderr[-3000:]}")
    listing = subprocess.run(mutmut + ["results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True, check=True).stdout
    statuses = dict(m.groups() for m in map(RESULT.match, listing.splitlines()) if m)
    killed = sum(s in ("killed", "timeout") for s in statuses.values())
    survivors = sorted(k for k, s in statuses.items() if s not in ("killed", "timeout"))
    return killed, len(statuses), survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(GROUPS), help="groups to run (default: all)")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    totals = [0, 0]
    lines = []
    for name in args.only or GROUPS:
        killed, total, survivors = run_group(name, args.children)
        print(f"[{name}] survivors: {', '.join(survivors) or 'none'}", flush=True)
        totals[0] += killed
        totals[1] += total
        lines.append(f"mutation_score_{name}: {killed / max(total, 1):.3f} ({killed}/{total})")
    for line in lines:
        print(line)
    print(f"mutation_score: {totals[0] / max(totals[1], 1):.3f} ({totals[0]}/{totals[1]})")


if __name__ == "__main__":
    main()
