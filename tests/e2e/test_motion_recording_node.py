"""Load IMU Recording in the real server: Sensor Logger exports (a folder, a zip) are listed in
the dropdown and joined; an unreadable time cell drops its row and the report says so."""
import zipfile

import numpy as np

from pipelines.motion.database import MotionDatabase
from pipelines.motion.synthetic import phone_recording, sensor_logger_files


def _prompt(recording: str) -> dict:
    return {"1": {"class_type": "RecomposeLoadIMU",
                  "inputs": {"recording": recording, "fps": 30.0, "acceleration_unit": "auto", "angle_unit": "auto"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}


def test_sensor_logger_folder_and_zip_are_listed_and_loaded(comfy):
    clip = MotionDatabase.synthetic(8).clips[3]
    files = sensor_logger_files(phone_recording(clip.trajectory, np.random.default_rng(3)))
    folder = comfy.base / "input" / "recompose_sensor_logger"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    lines = files["Accelerometer.csv"].splitlines()
    cells = lines[50].split(",")
    lines[50] = ",".join([cells[0], "12:3x"] + cells[2:])  # one unreadable seconds_elapsed cell
    with zipfile.ZipFile(comfy.base / "input" / "recompose_sensor_logger.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in {**files, "Accelerometer.csv": "\n".join(lines) + "\n"}.items():
            z.writestr(f"recompose_sensor_logger/{name}", text)
    spec = comfy.object_info()["RecomposeLoadIMU"]["input"]["required"]["recording"]
    options = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
    assert {"recompose_sensor_logger", "recompose_sensor_logger.zip"} <= set(options)
    for recording, dropped in (("recompose_sensor_logger", False), ("recompose_sensor_logger.zip", True)):
        entry = comfy.run(_prompt(recording), timeout=120)
        (report,) = [t for out in entry["outputs"].values() for t in out.get("text", [])]
        assert report.startswith(f"{recording}: ") and "samples at 30 fps" in report
        assert ("dropped 1 row(s) with an unreadable time or value" in report) == dropped, report
