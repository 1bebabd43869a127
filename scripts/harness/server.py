"""A real ComfyUI 0.3.75 process on 127.0.0.1, isolated in its own base directory."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMFY_DIR = REPO / ".comfyui"
PACK_NAME = "recompose"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkflowError(RuntimeError):
    """The server reported an execution error; ``message`` is what the user sees."""

    def __init__(self, node_type: str, message: str):
        super().__init__(f"{node_type}: {message}")
        self.node_type = node_type
        self.message = message


class ComfyServer:
    def __init__(self, base_dir: Path, python: str = sys.executable, output_dir: Path = None):
        self.base = Path(base_dir)
        self.python = python
        self.output_dir = Path(output_dir) if output_dir else self.base / "output"
        self.port = None
        self.proc = None
        self.log_path = self.base / "server.log"

    # -- lifecycle -------------------------------------------------------
    def prepare(self) -> None:
        for sub in ("custom_nodes", "models", "input", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        link = self.base / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        self.prepare()
        self.port = free_port()
        cmd = [self.python, str(COMFY_DIR / "main.py"), "--cpu", "--listen", "127.0.0.1",
               "--port", str(self.port), "--base-directory", str(self.base),
               "--output-directory", str(self.output_dir), "--disable-auto-launch"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=COMFY_DIR, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not listen within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP ------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 30.0):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def post(self, path: str, data, timeout: float = 30.0):
        req = urllib.request.Request(self.url(path), data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')[:4000]}") from e
        return json.loads(body) if body else None

    def object_info(self) -> dict:
        return self.get("/object_info", timeout=120)

    # -- prompts ---------------------------------------------------------
    def queue(self, prompt: dict) -> str:
        """Queues a prompt; ComfyUI runs the valid outputs of a partly invalid prompt, so any node error
        is raised here instead of letting part of a test's graph be skipped silently."""
        reply = self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
        if reply.get("node_errors"):
            raise RuntimeError(f"POST /prompt: invalid nodes {json.dumps(reply['node_errors'])[:4000]}")
        return reply["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """The history entry once done; raises WorkflowError on an execution error."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            entry = hist.get(prompt_id) if hist else None
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error":
                    for kind, msg in status.get("messages", []):
                        if kind == "execution_error":
                            raise WorkflowError(msg.get("node_type", "?"), msg.get("exception_message", "").strip())
                    raise WorkflowError("?", json.dumps(status)[:2000])
                return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()[-3000:]}")

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def output_files(self, entry: dict, node_id=None) -> list[Path]:
        """Files that SaveImage-like nodes wrote for a finished prompt, in order."""
        paths = []
        for nid, out in entry.get("outputs", {}).items():
            if node_id is not None and str(nid) != str(node_id):
                continue
            for items in out.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item and item.get("type") == "output":
                        paths.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return paths


def live_object_info() -> dict:
    """/object_info of a throw-away server (for scripts that generate files from node definitions)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp)).start()
        try:
            return server.object_info()
        finally:
            server.stop()
