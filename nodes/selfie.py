"""Total Selfie face undistortion nodes (thesis 3.4): face landmarks, the geometric and the learned
corrector (and its loader), and applying the correction's flow to other images/masks.
(Alignment, crop/paste, regions, poses and ranking live in nodes/selfie_tools.py.)"""
import numpy as np
import torch
from comfy_api.latest import io

from ._runtime import (cancellable, choice, load_models, load_placement, model_files, output_device, progress,
                       resolve_file)
from ._types import CoreFaceLandmarks

CATEGORY = "Recompose/Total Selfie"
UNDISTORT_MODES = ["geometry", "learned", "auto"]
ON_NO_FACE = ["error", "pass_through"]
FaceLandmarksType = io.Custom("RECOMPOSE_FACE_LANDMARKS")
FlowType = io.Custom("RECOMPOSE_FLOW")
CorrectorType = io.Custom("RECOMPOSE_FACE_CORRECTOR")

NO_FILE = "(none)"


def _out(x: torch.Tensor) -> torch.Tensor:
    return x.to(output_device())


class FaceCorrectorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        files = model_files("recompose_face")
        return io.Schema(
            node_id="RecomposeFaceCorrectorLoader",
            display_name="Load Face Corrector (Total Selfie)",
            category=CATEGORY,
            description="Loads Total Selfie's learned face corrector (00000196-checkpoint.pth.tar, facevid2vid "
                        "layout: generator, kp_detector with 15 keypoints, he_estimator, he_estimator_far) from "
                        "models/recompose/face, for Face Undistort's modes 'learned' and 'auto'. '(none)' loads "
                        "nothing, so mode 'auto' uses the geometric corrector.",
            inputs=[io.Combo.Input("checkpoint", options=[*files, NO_FILE], default=files[0] if files else NO_FILE,
                                   tooltip="Checkpoint file in models/recompose/face, or '(none)'.")],
            outputs=[CorrectorType.Output(display_name="corrector",
                                          tooltip="The loaded corrector networks (nothing for '(none)'), for "
                                                  "Face Undistort's modes 'learned' and 'auto'.")],
        )

    @classmethod
    def execute(cls, checkpoint) -> io.NodeOutput:
        from ..pipelines.undistort.learned import load_face_corrector

        if checkpoint == NO_FILE:
            return io.NodeOutput(None)
        return io.NodeOutput(load_face_corrector(resolve_file("recompose_face", checkpoint, "checkpoint")))


class FaceLandmarks(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeFaceLandmarks",
            display_name="Face Landmarks (mediapipe)",
            category=CATEGORY,
            description="Finds faces with mediapipe's face mesh (offline; small faces via the full-range "
                        "detector) and returns their 468 3D landmarks in pixels plus face-oval masks.",
            inputs=[io.Image.Input("image", tooltip="Photos to search for faces.")],
            outputs=[
                FaceLandmarksType.Output(display_name="landmarks",
                                         tooltip="Per image, a list of faces as [468, 3] pixel arrays (x, y, depth)."),
                io.Mask.Output(display_name="face_mask", tooltip="Union of the found face ovals per image."),
                io.Int.Output(display_name="faces_found", tooltip="Number of faces in the first image."),
            ],
        )

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        from ..pipelines.selfie_tools.mediapipe_runtime import require_for
        from ..pipelines.undistort import detect_landmarks
        from ..pipelines.undistort.depth import face_polygon_mask

        require_for("Face Landmarks", "image", int(image.shape[1]), int(image.shape[2]),
                    "use core ComfyUI's face landmarker and connect its FACE_LANDMARKS to Face Undistort / "
                    "Face Align Crop")
        landmarks = detect_landmarks(image)
        h, w = image.shape[1:3]
        masks = []
        for faces in landmarks:
            m = np.zeros((h, w), np.float32)
            for pts in faces:
                m = np.maximum(m, face_polygon_mask(pts, h, w))
            masks.append(torch.from_numpy(m))
        return io.NodeOutput(landmarks, _out(torch.stack(masks)), len(landmarks[0]) if landmarks else 0)


class FaceUndistort(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeFaceUndistort",
            display_name="Face Undistort (Total Selfie)",
            category=CATEGORY,
            description="Removes selfie perspective distortion (big nose, narrow face). geometry: re-projects the "
                        "face from the near camera to a far one with the focal length scaled by distance (thesis "
                        "eq. 3.3) from mediapipe face-mesh depth (or your depth map / landmarks), one dense warp "
                        "(re-done with the mesh depths read again on the first correction, see refine_depth); "
                        "it moves pixels, it cannot show hidden ears. learned: Total Selfie's facevid2vid "
                        "corrector re-renders the FFHQ-aligned 512x512 face as seen from far and pastes it back. "
                        "The background stays in place. A distance estimated nearer than a selfie can be (a "
                        "cropped photo) is raised to 0.25 m, distances outside 0.25-0.6 m are reported, and the "
                        "warp is weakened where it would fold over or tear (its Jacobian is checked).",
            inputs=[
                io.Image.Input("image", tooltip="Selfies to correct (any size; batches are corrected one by one)."),
                io.Combo.Input("mode", options=UNDISTORT_MODES, default="geometry",
                               tooltip="geometry: the mesh-based corrector. learned: the connected learned "
                                       "corrector (an error without one). auto: the learned corrector when one is "
                                       "loaded, otherwise geometry (the report says which ran)."),
                io.Float.Input("far_distance_m", default=3.0, min=0.5, max=20.0, step=0.1,
                               tooltip="Distance of the virtual far camera in metres (the thesis renders 'far' "
                                       "ground truth at ~10x the selfie distance). Geometry only: the learned "
                                       "corrector was trained for one far distance."),
                io.Float.Input("selfie_distance_m", default=0.0, min=0.0, max=5.0, step=0.01,
                               tooltip="Camera-to-eyes distance of the selfie. 0 = estimate it from the field of "
                                       "view and a 63 mm interpupillary prior (at least 0.25 m; the report says when "
                                       "it was bounded). Set it for cropped photos."),
                io.Float.Input("fov_degrees", default=70.0, min=10.0, max=140.0, step=1.0,
                               tooltip="Field of view across the long side of the uncropped photo (phone front "
                                       "cameras: ~65-80). Ignored when selfie_distance_m is set."),
                io.Int.Input("face_index", default=-1, min=-1, max=32,
                             tooltip="-1: the largest face. 0, 1, ...: faces from left to right."),
                io.Combo.Input("on_no_face", options=ON_NO_FACE, default="error",
                               tooltip="What to do with an image without a face: stop with an error, or return it "
                                       "unchanged."),
                io.Float.Input("falloff", default=0.35, min=0.05, max=2.0, step=0.05,
                               tooltip="Width (in face widths) over which the correction fades out around the face."),
                FaceLandmarksType.Input("landmarks", optional=True,
                                        tooltip="Landmarks from 'Face Landmarks' (skips detection)."),
                CoreFaceLandmarks.Input("face_landmarks", optional=True,
                                        tooltip="FACE_LANDMARKS from core ComfyUI's face landmarker (478-point "
                                                "meshes with depth); used instead of detection when "
                                                "'landmarks' is not connected."),
                io.Image.Input("depth", optional=True,
                               tooltip="Optional depth map (e.g. from a monocular depth node), same size as the "
                                       "image; fitted to the mesh, used instead of mesh interpolation."),
                io.Boolean.Input("depth_is_disparity", default=True,
                                 tooltip="On: brighter = closer (Depth Anything / MiDaS). Off: brighter = further."),
                io.Boolean.Input("refine_depth", default=True, optional=True,
                                 tooltip="Geometry with detected faces: read the face-mesh depths again on a first "
                                         "correction (the mesh sets a near face's chin too far back) and correct "
                                         "again with them when they bring the face forward, else keep the first "
                                         "correction (one more face-mesh pass). Off: one pass; better when the "
                                         "photo was taken from further away than the distance used, which the "
                                         "refinement over-corrects further."),
                io.Mask.Input("depth_mask", optional=True,
                              tooltip="Where the depth map's face is (default: the face-mesh oval)."),
                CorrectorType.Input("corrector", optional=True,
                                    tooltip="Learned corrector from 'Load Face Corrector' (modes 'learned', 'auto')."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The corrected photos, same size as the input."),
                FlowType.Output(display_name="flow",
                                tooltip="The dense warp used, to warp masks or other images the same way "
                                        "(Apply Face Flow). Learned corrector: where its features came from "
                                        "(depth-averaged deformation), an approximation of its re-rendering."),
                io.Mask.Output(display_name="face_mask", tooltip="The face oval in the corrected image."),
                io.String.Output(display_name="report",
                                 tooltip="Per image: estimated distance, focal length, which corrector ran."),
            ],
        )

    @classmethod
    def execute(cls, image, mode, far_distance_m, selfie_distance_m, fov_degrees, face_index, on_no_face, falloff,
                depth_is_disparity=True, refine_depth=True, landmarks=None, face_landmarks=None, depth=None,
                depth_mask=None, corrector=None) -> io.NodeOutput:
        from ..pipelines.selfie_tools.external_faces import faces_from_face_landmarks
        from ..pipelines.selfie_tools.mediapipe_runtime import require_for
        from ..pipelines.undistort import UndistortSettings
        from ..pipelines.undistort.learned import correct_faces

        choice(mode, UNDISTORT_MODES, "Face Undistort", "mode")
        choice(on_no_face, ON_NO_FACE, "Face Undistort", "on_no_face")
        if landmarks is None and face_landmarks is not None:
            landmarks = faces_from_face_landmarks(face_landmarks, image.shape[0], need_depth=True)
        if landmarks is None and (depth is None or selfie_distance_m <= 0 or mode != "geometry"):
            require_for("Face Undistort", "image", int(image.shape[1]), int(image.shape[2]),
                        "connect 'landmarks' / 'face_landmarks' from another node, or a depth map with "
                        "selfie_distance_m set")
        settings = UndistortSettings(far_m=far_distance_m, distance_m=selfie_distance_m, fov_deg=fov_degrees,
                                     face_index=face_index, on_no_face=on_no_face, falloff=falloff,
                                     depth_is_disparity=depth_is_disparity, refine_depth=refine_depth)
        device = load_models(corrector if mode != "geometry" else None)
        with cancellable():
            result, report = correct_faces(mode, image, settings, corrector, landmarks=landmarks, depth=depth,
                                           depth_mask=depth_mask, progress=progress(image.shape[0]), device=device,
                                           dtype=load_placement()[1])
        flow = {"sampling_map": result.sampling_maps, "size": tuple(image.shape[1:3])}
        return io.NodeOutput(_out(result.images), flow, _out(result.face_masks), report)


class ApplyFaceFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeApplyFaceFlow",
            display_name="Apply Face Flow",
            category=CATEGORY,
            description="Warps an image and/or mask with the flow from Face Undistort, so parsing maps or masks "
                        "stay aligned with the corrected photo.",
            inputs=[
                FlowType.Input("flow", tooltip="Flow output of Face Undistort."),
                io.Image.Input("image", optional=True,
                               tooltip="Images to warp (same size as the undistorted ones): as many as were "
                                       "undistorted (image i gets warp i), or any number for a flow of one image."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Masks to warp (same size as the undistorted images), batched like 'image'."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The warped image (empty 64x64 if none was given)."),
                io.Mask.Output(display_name="mask", tooltip="The warped mask (empty 64x64 if none was given)."),
            ],
        )

    @classmethod
    def execute(cls, flow, image=None, mask=None) -> io.NodeOutput:
        from ..pipelines.common.images import image_to_bchw, mask_to_b1hw
        from ..pipelines.undistort.warp import apply_flow

        maps = flow["sampling_map"]

        def warp(x_bchw, what):
            return apply_flow(x_bchw.float().cpu(), maps, what)

        out_img = torch.zeros(1, 64, 64, 3) if image is None else warp(image_to_bchw(image), "image").permute(0, 2, 3, 1)
        out_mask = torch.zeros(1, 64, 64) if mask is None else warp(mask_to_b1hw(mask), "mask")[:, 0]
        return io.NodeOutput(_out(out_img.clamp(0, 1)), _out(out_mask.clamp(0, 1)))


NODES = [FaceCorrectorLoader, FaceLandmarks, FaceUndistort, ApplyFaceFlow]
