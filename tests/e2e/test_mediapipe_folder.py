"""The pack registers models/mediapipe (mediapipe's Tasks model files) in the real server."""


def test_the_mediapipe_folder_lists_task_and_tflite_files(comfy):
    folder = comfy.base / "models" / "mediapipe"
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "face_landmarker.task", folder / "selfie_segmenter.tflite", folder / "notes.txt"]
    try:
        for path in written:
            path.write_bytes(b"")  # listed by name only; nothing here reads them
        assert sorted(comfy.get("/models/mediapipe")) == ["face_landmarker.task", "selfie_segmenter.tflite"]
    finally:
        for path in written:
            path.unlink()
