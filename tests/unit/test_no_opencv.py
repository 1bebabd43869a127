"""The pack needs no OpenCV: the no-weights workflows' nodes run with cv2 unimportable, and videos are
read through PyAV (which ComfyUI itself requires)."""
import json
import subprocess
import sys

import numpy as np

from scripts.harness.server import COMFY_DIR, REPO

# Runs the nodes of workflows/motion_retrieval.json and workflows/inverse_painting_baseline.json in
# order, each input taken from the workflow (widget values) or the upstream node's output.
NO_CV2_RUN = r"""
import importlib.abc, importlib.util, json, sys

class BlockCv2(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "cv2" or name.startswith("cv2."):
            raise ModuleNotFoundError("No module named 'cv2' (blocked by the test)", name="cv2")

sys.meta_path.insert(0, BlockCv2())
repo, comfy_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
from comfy.cli_args import args
args.cpu = True
spec = importlib.util.spec_from_file_location("recompose_pack", repo + "/__init__.py", submodule_search_locations=[repo])
pack = importlib.util.module_from_spec(spec)
sys.modules["recompose_pack"] = pack
spec.loader.exec_module(pack)
import folder_paths
folder_paths.set_input_directory(repo + "/example_inputs")
import numpy as np, torch
from PIL import Image
from recompose_pack.nodes import FAMILIES
from recompose_pack.nodes._folders import register_model_folders
register_model_folders()

nodes = {}
for family in FAMILIES:
    try:
        module = importlib.import_module("recompose_pack.nodes." + family)
    except ModuleNotFoundError as exc:
        if exc.name == "cv2":
            raise
        continue  # another optional dependency: not what this test is about
    nodes.update({n.define_schema().node_id: n for n in module.NODES})

def load_image(image):
    return (torch.from_numpy(np.asarray(Image.open(folder_paths.get_annotated_filepath(image)).convert("RGB"),
                                        dtype=np.float32) / 255.0)[None],)

def run(workflow):
    links = {link[0]: link for link in workflow["links"]}
    results, ran = {}, []
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        linked = {i["name"]: results[links[i["link"]][1]][links[i["link"]][2]]
                  for i in node.get("inputs", []) if i.get("link") is not None}
        if node["type"] == "LoadImage":
            results[node["id"]] = load_image(node["widgets_values"][0])
            continue
        if node["type"] not in nodes:
            continue  # a core output node (SaveImage, PreviewAny...)
        cls = nodes[node["type"]]
        values, kwargs = list(node.get("widgets_values") or []), {}
        for inp in cls.define_schema().inputs:
            if inp.id in linked:
                kwargs[inp.id] = linked[inp.id]
            elif inp.get_io_type() in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") and values:
                kwargs[inp.id] = values.pop(0)
                control = getattr(inp, "control_after_generate", None)  # the frontend's rule, as in
                if control or (control is None and inp.get_io_type() == "INT" and inp.id in ("seed", "noise_seed")):
                    values.pop(0)  # scripts/harness/workflow.has_value_control
        results[node["id"]] = cls.execute(**kwargs).args
        ran.append(node["type"])
    return ran

for name in sys.argv[3:]:
    print(json.dumps({name: run(json.load(open(repo + "/workflows/" + name + ".json")))}))
"""


def test_no_weights_workflows_run_without_opencv():
    names = ["motion_retrieval", "inverse_painting_baseline"]
    proc = subprocess.run([sys.executable, "-c", NO_CV2_RUN, str(REPO), str(COMFY_DIR), *names],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    ran = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            ran.update(json.loads(line))
    assert set(ran) == set(names), proc.stdout[-2000:]
    assert "RecomposeRetrieveMotion" in ran["motion_retrieval"]
    assert "RecomposeInversePaint" in ran["inverse_painting_baseline"]


def test_no_file_of_the_pack_imports_opencv():
    offenders = [str(p.relative_to(REPO)) for folder in ("nodes", "pipelines") for p in (REPO / folder).rglob("*.py")
                 if "import cv2" in p.read_text()]
    assert not offenders, offenders


def write_video(path, frames, fps: int) -> None:
    """A high-quality MJPEG AVI written through PyAV (frames: RGB uint8 [H, W, 3])."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=fps, options={"qmin": "1", "qmax": "2"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def test_videos_are_read_through_pyav_as_rgb(tmp_path):
    from pipelines.motion.database import _read_video

    red, blue = np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48, 3), np.uint8)
    red[..., 0], blue[..., 2] = 220, 220
    write_video(tmp_path / "clip.avi", [red, blue, red], fps=10)
    frames = _read_video(tmp_path / "clip.avi")
    assert frames.shape == (3, 32, 48, 3) and frames.dtype == np.uint8
    means = frames.reshape(3, -1, 3).mean(axis=1)
    assert means[0, 0] > 180 and means[0, 2] < 40 and means[1, 2] > 180 and means[1, 0] < 40  # RGB, not BGR
