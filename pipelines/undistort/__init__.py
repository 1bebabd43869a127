"""Face perspective undistortion: geometric (mediapipe mesh + eq. 3.3 re-projection) and the
official learned corrector (facevid2vid networks in facevid2vid/, run by learned.py)."""
from .geometry import INTEROCULAR_M, NearCamera, near_camera, project_far, radial_scale
from .undistort import UndistortResult, UndistortSettings, detect_landmarks, undistort_faces

__all__ = ["INTEROCULAR_M", "NearCamera", "near_camera", "project_far", "radial_scale",
           "UndistortResult", "UndistortSettings", "detect_landmarks", "undistort_faces"]
