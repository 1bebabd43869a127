"""Mutation testing of the core maths with mutmut: ``make mutation`` (or ``--only NAME``).

Each module group runs in a scratch copy of the tracked files under ``$RECOMPOSE_MUTATION_DIR``
(default /tmp/recompose-mutation), so mutmut's ``mutants/`` tree and its config never touch the
checkout. Only lines the group's tests cover are mutated, and a group may name the functions in
scope (see GROUPS). Prints ``mutation_score_<group>: ...`` as soon as each group finishes, then
``mutation_score: ...`` overall.

``--resume`` keeps a group's scratch copy (mutmut's verdicts live in ``mutants/**/*.meta``),
refreshes its tracked files from the checkout and tests only the mutants still unchecked;
``--recheck`` also re-tests that copy's survivors, e.g. after a test fix that covers no new lines.
After editing a mutated module, or after adding tests that reach new lines, run without ``--resume``:
mutmut keeps verdicts by mutant name, and with only covered lines mutated new coverage renumbers the
mutants, so old verdicts would land on other mutants. ``--sample N`` checks at most N mutants per group,
drawn at random: a cheaper estimate, its line naming how many stayed unchecked.
``--report`` prints the lines of the existing scratch copies without running anything.
Run it niced on a shared machine: ``nice -n 19 .venv/bin/python scripts/mutation.py``.
"""
import argparse
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def group(modules, tests, keyword=None, scope=None, undecorate=False, preload_comfy=False):
    """``tests``: globs or pytest node ids; ``keyword``: a pytest -k filter. ``scope``: fnmatch patterns over
    mutmut's mutant names (``<module>.x_<function>__mutmut_<n>``, methods ``<module>.xǁClassǁmethod__...``);
    None means every covered function of ``modules``. ``undecorate``: mutmut never mutates a decorated
    function, so the scratch copy drops ``@torch.no_grad()`` from ``modules`` and runs each test inside
    ``torch.no_grad()`` instead, which is all the decorator did. ``preload_comfy``: import ComfyUI (as the
    tests' fixtures do, with --cpu) once in mutmut's fork server instead of once per mutant."""
    return {"modules": modules, "tests": tests, "keyword": keyword, "scope": scope, "undecorate": undecorate,
            "preload_comfy": preload_comfy}


SELFIE, MULTIREF, PAINT = "pipelines.selfie_inpaint", "pipelines.multiref", "pipelines.inverse_painting"
GROUPS = {
    # test_diffusers_processor_patches_only_spatial_self_attention builds a diffusers UNet (~30 s a mutant);
    # the same attention is pinned by hand in the fast tests (width concatenation, closed forms, residual).
    # Out of scope: width_concat_reference (the tests' oracle, Fig. 4.4 written out; no node calls it) and
    # the registration plumbing (transformer_block_keys, patch_model, keep_references_in_context_windows,
    # enable_multi_reference, spatial_self_attention_names: which ComfyUI/diffusers hooks get the patch).
    "multiref": group(["pipelines/multiref/attention.py", "pipelines/multiref/fusion.py",
                       "pipelines/multiref/comfy_patch.py", "pipelines/multiref/diffusers_processor.py"],
                      ["tests/unit/test_multiref.py", "tests/unit/test_multiref_fusion.py"],
                      "not patches_only_spatial_self_attention",
                      scope=[f"{MULTIREF}.attention.x_{f}_*" for f in ("_attend", "check_frames", "thesis_context",
                                                                       "multi_reference_attention")]
                      + [f"{MULTIREF}.fusion.*", f"{MULTIREF}.comfy_patch.x__is_spatial_*",
                         f"{MULTIREF}.comfy_patch.x_call_layout_*", f"{MULTIREF}.comfy_patch.x_make_replacement_*",
                         f"{MULTIREF}.comfy_patch.x_windows_with_references_*",
                         f"{MULTIREF}.diffusers_processor.xǁMultiReferenceAttnProcessorǁ__call___*"],
                      preload_comfy=True),
    # The loop (generate_latents) and eq. 3.4. Out of scope as not the method's maths: LatentPreview (the
    # progress-bar preview image), make_scheduler (picks a diffusers class by name) and the selfie encoder
    # (tested with its loader in test_selfie_inpaint.py).
    "selfie_inpaint": group(["pipelines/selfie_inpaint/blending.py", "pipelines/selfie_inpaint/pipeline.py"],
                            ["tests/unit/test_selfie_inpaint.py"],
                            "blending or step_by_step or dilation or loop_keeps or input_errors"
                            " or largest_sigma or half_threshold",
                            scope=[f"{SELFIE}.blending.*"]
                            + [f"{SELFIE}.pipeline.xǁSelfieInpaintPipelineǁ{m}_*"
                               for m in ("generate_latents", "_prepare_inputs", "_pixel_mask", "_encode")],
                            undecorate=True),
    # The guidance combination, the ReferenceNet-bank attention and the update loop (CanvasRenderer.update:
    # six-branch batch, guided steps, combine_init, previous-latents reuse, target cache, decode), pinned by
    # hand; the loop runs over stand-in modules in test_painting_update_loop.py. Not mutated: loaders and
    # the CLIP/text encoders, whose tests need the tiny SD model built and loaded per mutant (~30 s each).
    # (mutmut's coverage pass ignores -k, so the scope is explicit.)
    "inverse_painting": group(["pipelines/inverse_painting/renderer.py", "pipelines/inverse_painting/reference.py"],
                              ["tests/unit/test_painting_renderer.py", "tests/unit/test_painting_branches.py",
                               "tests/unit/test_painting_update_loop.py"],
                              "guidance or time_encoding or bank_attention_by_hand or fresh_state or update_loop",
                              scope=[f"{PAINT}.renderer.{f}*" for f in ("x_combine_guidance_", "x__canvas_hook_",
                                                                        "x_decode_latents_")]
                              + [f"{PAINT}.renderer.xǁCanvasRendererǁ{m}_*"
                                 for m in ("update", "_prepare_target", "_target_key", "_previous_latents")]
                              + [f"{PAINT}.reference.{f}*" for f in ("x__", "xǁBankReaderǁ", "xǁFusionStateǁ",
                                                                     "x_install_readers_", "x_bank_key_values_")],
                              undecorate=True),
    "motion": group(["pipelines/motion/retrieval.py", "pipelines/motion/imu.py"],
                    ["tests/unit/test_motion_maths.py", "tests/unit/test_motion_imu.py"]),
    # test_a_tight_crop... runs the face mesh on a photo (~10 s a mutant); the warp maths is pinned by the
    # hand-derived cases of the other tests.
    "undistort": group(["pipelines/undistort/geometry.py", "pipelines/undistort/warp.py"],
                       ["tests/unit/test_undistort_geometry.py", "tests/unit/test_undistort_warp.py",
                        "tests/unit/test_undistort.py::test_identity_map_remap_is_exact",
                        "tests/unit/test_undistort_batches.py::test_apply_flow_pairs_map_i_with_image_i",
                        "tests/unit/test_undistort_batches.py::"
                        "test_apply_flow_of_one_image_warps_every_image_and_other_batches_are_refused"],
                       "not tight_crop"),
    "aligntok": group(["pipelines/aligntok/losses.py"], ["tests/unit/test_aligntok_losses.py"]),
    "portrait": group(["pipelines/portrait_edit/guidance.py", "pipelines/portrait_edit/mask.py",
                       "pipelines/portrait_edit/adapter.py", "pipelines/portrait_edit/pairs.py"],
                      ["tests/unit/test_portrait_maths.py", "tests/unit/test_portrait_pairs.py"]),
}
SCRATCH = Path(os.environ.get("RECOMPOSE_MUTATION_DIR", "/tmp/recompose-mutation"))
RESULT = re.compile(r"^\s*(\S+): (\w[\w ]*)$")
KILLED = ("killed", "timeout")
NO_MUTANT = "no.such.mutant"
# A mutant counts as a timeout past (multiplier x its clean tests' time + constant) seconds of wall clock.
# mutmut's defaults (15x, 1 s) suit an idle machine; on a loaded one a mutant that raises at once can take
# tens of seconds of wall clock just to start pytest, and would be scored "killed" by timeout. The maths
# here has no unbounded loops, so a long margin costs nothing but the rare real hang.
TIMEOUTS = {"timeout_multiplier": 10.0, "timeout_constant": 60.0}
PLUGIN = "scripts/_mutation_plugin.py"  # written into the scratch copy only
NO_GRAD_HOOK = """

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with torch.no_grad():
        yield
"""
COMFY_PRELOAD = """
from scripts.harness.server import COMFY_DIR

sys.path.insert(0, str(COMFY_DIR))
from comfy.cli_args import args

args.cpu = True
import comfy.context_windows, comfy.model_management, comfy.model_patcher, comfy.patcher_extension
import comfy.ldm.modules.attention
"""
DECORATOR = re.compile(r"^[ \t]*@torch\.no_grad\(\)[ \t]*\n", re.M)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def scratch_copy(name: str, spec: dict, resume: bool) -> Path:
    work = SCRATCH / name
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    for rel in tracked_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    for where in (work, work / "mutants"):  # tests run inside mutants/ and import ComfyUI from there
        where.mkdir(parents=True, exist_ok=True)
        if not (where / ".comfyui").exists():
            (where / ".comfyui").symlink_to((REPO / ".comfyui").resolve())
    selection = [t if "::" in t else str(p.relative_to(work)) for t in spec["tests"]
                 for p in (sorted(work.glob(t)) if "::" not in t else [t])]
    if spec["keyword"]:
        selection += ["-k", spec["keyword"]]
    plugin = ""
    if spec["undecorate"]:
        for module in spec["modules"]:
            (work / module).write_text(DECORATOR.sub("", (work / module).read_text()))
        plugin += NO_GRAD_HOOK
    if spec["preload_comfy"]:
        plugin += COMFY_PRELOAD
    extra = []
    if plugin:
        (work / PLUGIN).write_text("import sys\n\nimport pytest\nimport torch\n" + plugin)
        extra = ["-p", PLUGIN[:-3].replace("/", ".")]
    config = {"source_paths": ["pipelines"], "only_mutate": spec["modules"], "also_copy": ["scripts"],
              "pytest_add_cli_args_test_selection": selection, "pytest_add_cli_args": extra,
              "process_isolation": "forkserver", "mutate_only_covered_lines": True, **TIMEOUTS}
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    pyproject = work / "pyproject.toml"
    pyproject.write_text("\n".join(lines) + "\n\n" + pyproject.read_text())
    return work


def in_scope(spec: dict, mutant: str) -> bool:
    return spec["scope"] is None or any(fnmatch.fnmatchcase(mutant, p) for p in spec["scope"])


def statuses(work: Path, mutmut: list[str], env: dict, spec: dict) -> dict[str, str]:
    if not (work / "mutants").exists():
        return {}
    listing = subprocess.run(mutmut + ["results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True, check=True).stdout
    found = dict(m.groups() for m in map(RESULT.match, listing.splitlines()) if m)
    return {k: s for k, s in found.items() if in_scope(spec, k)}


def mutmut_run(work: Path, mutmut: list[str], env: dict, children: int, names: list[str], check=True) -> None:
    with open(work / "mutmut-run.log", "a") as log:
        # its own process group, so that stopping this script stops mutmut's workers too
        run = subprocess.Popen(mutmut + ["run", "--max-children", str(children)] + names, cwd=work, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            run.wait()
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGTERM)
                run.wait()
    if check and run.returncode != 0:
        raise SystemExit(f"mutmut run failed in {work}; see {work / 'mutmut-run.log'}")


def run_group(name: str, children: int, resume: bool, recheck: bool, sample: int) -> dict[str, str]:
    spec = GROUPS[name]
    missing = [m for m in spec["modules"] if not (REPO / m).exists()]
    if missing:
        raise SystemExit(f"mutation group {name}: missing {missing}")
    work = scratch_copy(name, spec, resume)
    mutmut = [sys.executable, "-m", "mutmut"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    known = statuses(work, mutmut, env, spec)
    if sample and not known:
        # generate the mutants and the test map only: mutmut refuses a name that matches no mutant, after both
        mutmut_run(work, mutmut, env, children, [NO_MUTANT], check=False)
        known = statuses(work, mutmut, env, spec)
    if not known:
        mutmut_run(work, mutmut, env, children, spec["scope"] or [])
    elif spec["scope"] is None and not sample:
        mutmut_run(work, mutmut, env, children, [])  # mutmut itself skips decided mutants
    else:
        todo = sorted(k for k, s in known.items() if s == "not checked")
        if sample:
            todo = random.Random(0).sample(todo, min(len(todo), max(sample - (len(known) - len(todo)), 0)))
        if todo:
            try:
                mutmut_run(work, mutmut, env, children, todo)
            except SystemExit:
                # mutmut regenerated the mutants (new tests changed the covered lines) and the names we
                # read are stale: let it run every unchecked mutant instead
                mutmut_run(work, mutmut, env, children, [])
    if recheck:
        survivors = [k for k, s in statuses(work, mutmut, env, spec).items() if s not in KILLED]
        if survivors:
            mutmut_run(work, mutmut, env, children, survivors)
    return statuses(work, mutmut, env, spec)


def score_line(label: str, found: dict[str, str]) -> str:
    killed = sum(s in KILLED for s in found.values())
    unchecked = sum(s == "not checked" for s in found.values())
    checked = len(found) - unchecked
    partial = f", {unchecked} not checked" if unchecked else ""
    return f"{label}: {killed / max(checked, 1):.3f} ({killed}/{checked}{partial})"


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(GROUPS), help="groups to run (default: all)")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--resume", action="store_true", help="keep the scratch copies and their verdicts")
    parser.add_argument("--recheck", action="store_true", help="with --resume: re-test the survivors too")
    parser.add_argument("--sample", type=int, default=0,
                        help="check at most this many mutants per group, drawn at random (seed 0) among those in "
                             "scope: an estimate of the score, printed with the count left unchecked")
    parser.add_argument("--report", action="store_true", help="only print the scores of existing scratch copies")
    args = parser.parse_args()
    overall: dict[str, str] = {}
    for name in args.only or GROUPS:
        if args.report:
            spec = GROUPS[name]
            env = dict(os.environ, OMP_NUM_THREADS="1")
            found = statuses(SCRATCH / name, [sys.executable, "-m", "mutmut"], env, spec)
        else:
            found = run_group(name, args.children, args.resume, args.recheck, args.sample)
        survivors = sorted(k for k, s in found.items() if s not in KILLED and s != "not checked")
        print(f"[{name}] survivors: {', '.join(survivors) or 'none'}", flush=True)
        print(score_line(f"mutation_score_{name}", found), flush=True)
        overall.update(found)
    print(score_line("mutation_score", overall), flush=True)


if __name__ == "__main__":
    main()
