"""Total Selfie tools: FFHQ face alignment, crop -> refine -> paste back, person mask + pose,
reference-photo ranking. Thin adapters over pipelines/selfie_tools (mediapipe imported lazily).

Registered as its own family ("selfie_tools" in nodes/__init__.py FAMILIES).
"""
import logging

import numpy as np
import torch
from comfy_api.latest import io

from ..pipelines.common.errors import InputError
from ..pipelines.common.images import bchw_to_image, image_to_bchw, image_to_uint8, mask_to_b1hw
from ._runtime import choice, output_device, progress
from ._types import CoreFaceLandmarks, PoseKeypoint

CATEGORY = "Recompose/Total Selfie"
CropType = io.Custom("RECOMPOSE_CROP")


def _out(x: torch.Tensor) -> torch.Tensor:
    return x.to(output_device())


def _require_mediapipe(node: str, image, instead: str, image_input: str = "image") -> None:
    from ..pipelines.selfie_tools.mediapipe_runtime import require_for

    require_for(node, image_input, int(image.shape[1]), int(image.shape[2]), instead)


def _crop_batch_from(crops):
    from ..pipelines.selfie_tools.crop import CropBatch

    if not isinstance(crops, CropBatch):
        raise InputError("'crop_geometry' must come from 'Face Align Crop' or 'Crop Region' (RECOMPOSE_CROP).")
    return crops


class RecomposeFaceAlignCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeFaceAlignCrop",
            display_name="Face Align Crop (FFHQ)",
            category=CATEGORY,
            description="Cuts an FFHQ-aligned square around a face (eyes level, fixed eye-mouth framing; "
                        "Karras et al. 2019), as Total Selfie does before undistorting a face selfie. The crop "
                        "geometry output pastes a refined/corrected face back with 'Paste Crop Back'. Landmarks "
                        "come from mediapipe's face mesh, or from OpenPose face keypoints when connected.",
            inputs=[
                io.Image.Input("image", tooltip="Photos holding a face (a batch is aligned image by image)."),
                io.Int.Input("size", default=512, min=64, max=4096, step=8,
                             tooltip="Side of the square aligned face, in pixels (Total Selfie uses 512)."),
                io.Int.Input("face_index", default=-1, min=-1, max=31,
                             tooltip="Which face: -1 = the largest, 0 = the leftmost, 1 = the next one..."),
                io.Float.Input("feather", default=0.08, min=0.0, max=0.5, step=0.01,
                               tooltip="Soft edge used when pasting back, as a fraction of the crop side."),
                PoseKeypoint.Input("face_keypoints", optional=True,
                                   tooltip="Optional POSE_KEYPOINT with OpenPose face keypoints (68/70 points, e.g. "
                                           "from DWPose); used instead of mediapipe when connected."),
                CoreFaceLandmarks.Input("face_landmarks", optional=True,
                                        tooltip="Optional FACE_LANDMARKS from core ComfyUI's face landmarker "
                                                "(478-point meshes); used instead of mediapipe when connected."),
            ],
            outputs=[
                io.Image.Output(display_name="aligned", tooltip="The FFHQ-aligned face crops, size x size."),
                CropType.Output(display_name="crop_geometry", tooltip="Crop geometry for 'Paste Crop Back'."),
            ],
        )

    @classmethod
    def execute(cls, image, size, face_index, feather, face_keypoints=None, face_landmarks=None):
        from ..pipelines.selfie_tools import align, crop, facemesh
        from ..pipelines.selfie_tools.external_faces import faces_from_face_landmarks

        if face_keypoints is None and face_landmarks is None:
            _require_mediapipe("Face Align Crop", image, "connect 'face_keypoints' (OpenPose face keypoints, e.g. "
                                                         "from DWPose) or 'face_landmarks' (core face landmarker)")
        meshes = None if face_landmarks is None else faces_from_face_landmarks(face_landmarks, image.shape[0])
        rgb = image_to_uint8(image)
        geos = []
        for i in range(rgb.shape[0]):
            if face_keypoints is not None:
                points = align.face_points_from_pose_json(face_keypoints, i, face_index, rgb.shape[1:3])
                quad = align.quad_from_dlib68(points)
            else:
                faces = meshes[i] if meshes is not None else facemesh.detect_faces(rgb[i], max(4, face_index + 1))
                quad = align.quad_from_mediapipe(facemesh.pick_face(faces, face_index, f"image {i + 1}"))
            geos.append(align.align_crop(quad, rgb.shape[1:3], size, feather))
        crops = crop.CropBatch(geos)
        return io.NodeOutput(_out(bchw_to_image(crop.crop_images(image_to_bchw(image).float().cpu(), crops))), crops)


class RecomposeRegionCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..pipelines.selfie_tools.regions import REGIONS

        return io.Schema(
            node_id="RecomposeRegionCrop",
            display_name="Crop Region (face / hands / shoes / mask)",
            category=CATEGORY,
            description="Cuts a region out for refinement (Total Selfie's appearance refinement, 3.5.6): the face, "
                        "hands or shoes found by mediapipe, or the box of any MASK. Wire the crop into any refiner "
                        "(e.g. VAE Encode -> KSampler with denoise 0.4 -> VAE Decode) and then into 'Paste Crop "
                        "Back' with the crop geometry.",
            inputs=[
                io.Image.Input("image", tooltip="Images to crop from (one crop per image)."),
                io.Combo.Input("region", options=list(REGIONS), default="face",
                               tooltip="What to crop: the box of the 'mask' input, or a body part found by "
                                       "mediapipe (shoes = feet keypoints on the person, else the lowest part of a "
                                       "person who ends inside the frame). A region outside the picture is an "
                                       "error, not a crop of something else."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip="Crop width in pixels."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Crop height in pixels."),
                io.Float.Input("context", default=1.5, min=1.0, max=6.0, step=0.05,
                               tooltip="How much larger than the region the crop is (1 = tight)."),
                io.Float.Input("feather", default=0.08, min=0.0, max=0.5, step=0.01,
                               tooltip="Soft edge used when pasting back, as a fraction of the crop side."),
                io.Int.Input("face_index", default=-1, min=-1, max=31,
                             tooltip="Region 'face': -1 = the largest face, 0 = the leftmost..."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Region mask (needed for region 'mask'); also cut out as 'crop_mask'."),
            ],
            outputs=[
                io.Image.Output(display_name="crop", tooltip="The cropped regions, width x height."),
                CropType.Output(display_name="crop_geometry", tooltip="Crop geometry for 'Paste Crop Back'."),
                io.Mask.Output(display_name="crop_mask",
                               tooltip="The region inside the crop: the cropped input mask, else the region's box."),
            ],
        )

    @classmethod
    def execute(cls, image, region, width, height, context, feather, face_index, mask=None):
        from ..pipelines.selfie_tools import crop, regions

        choice(region, regions.REGIONS, "Crop Region", "region")
        if region != "mask":
            _require_mediapipe(f"Crop Region ('{region}')", image, "use region 'mask' with a mask of the region")
        rgb = image_to_uint8(image)
        masks = None if mask is None else (mask if mask.ndim == 3 else mask[None]).float().cpu()
        geos, region_masks = [], []
        for i in range(rgb.shape[0]):
            m = None if masks is None else masks[min(i, masks.shape[0] - 1)].numpy()
            box = regions.region_box(region, rgb[i], m, face_index)
            geos.append(crop.box_crop(box, rgb.shape[1:3], (height, width), context, feather))
            region_masks.append(torch.from_numpy(m) if m is not None else _box_mask(box, rgb.shape[1:3]))
        crops = crop.CropBatch(geos)
        cut = crop.crop_images(image_to_bchw(image).float().cpu(), crops)
        cut_masks = torch.cat([crop.crop_images(rm[None, None].float(), crop.CropBatch([g]), mode="nearest")
                               for rm, g in zip(region_masks, geos)])[:, 0]
        return io.NodeOutput(_out(bchw_to_image(cut)), crops, _out(cut_masks))


def _box_mask(box, hw) -> torch.Tensor:
    m = torch.zeros(hw)
    x0, y0, x1, y1 = [int(round(v)) for v in box]
    m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1.0
    return m


class RecomposePasteCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePasteCrop",
            display_name="Paste Crop Back",
            category=CATEGORY,
            description="Warps refined crops back into the images they were cut from (inverse of the crop geometry, "
                        "so rotated FFHQ crops work too) and blends them in with a feathered edge.",
            inputs=[
                io.Image.Input("image", tooltip="The original images the crops were cut from."),
                io.Image.Input("refined", tooltip="The refined crops (resized back to the crop size if needed)."),
                CropType.Input("crop_geometry", tooltip="Crop geometry from 'Face Align Crop' or 'Crop Region'."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional mask in the original image's frame: only this area is replaced."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The images with the refined crops pasted in."),
                io.Mask.Output(display_name="paste_mask", tooltip="Where (and how much) each image was replaced."),
            ],
        )

    @classmethod
    def execute(cls, image, refined, crop_geometry, mask=None):
        from ..pipelines.selfie_tools import crop

        crops = _crop_batch_from(crop_geometry)
        region = None if mask is None else (mask if mask.ndim == 3 else mask[None]).float().cpu()
        out, used = crop.paste_images(image_to_bchw(image).float().cpu(), image_to_bchw(refined).float().cpu(),
                                      crops, region)
        return io.NodeOutput(_out(bchw_to_image(out)), _out(used))


class RecomposePersonPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposePersonPose",
            display_name="Person Mask + Pose (mediapipe)",
            category=CATEGORY,
            description="Offline person segmentation and body pose from mediapipe (one person per image): a person "
                        "MASK, OpenPose-18 keypoints in the community POSE_KEYPOINT format, the OpenPose picture "
                        "for ControlNet, and a coarse part map (head / upper body / lower body / feet) usable by "
                        "'Rank Reference Photos' with the 'mediapipe coarse parts' scheme. An image where the pose "
                        "model finds nobody gets an empty mask, no people and a warning in the report.",
            inputs=[
                io.Image.Input("image", tooltip="Photos of a person."),
                io.Float.Input("threshold", default=0.5, min=0.01, max=0.99, step=0.01,
                               tooltip="Person-probability threshold for the mask and the part map."),
            ],
            outputs=[
                io.Mask.Output(display_name="person_mask", tooltip="Where the person is (0..1, thresholded)."),
                PoseKeypoint.Output(display_name="pose_keypoint",
                                    tooltip="OpenPose-18 body keypoints per image (comfyui_controlnet_aux format)."),
                io.Image.Output(display_name="pose_image", tooltip="The keypoints drawn as an OpenPose picture."),
                io.Image.Output(display_name="part_map",
                                tooltip="Coarse parts as a label picture (PASCAL-VOC colours; ids 0 background, "
                                        "1 head, 2 upper body, 3 lower body, 4 feet)."),
                io.String.Output(display_name="report",
                                 tooltip="Per image: whether a person was found and how much the mask covers. "
                                         "Without a person the mask is empty (mediapipe's segmentation alone "
                                         "also marks animals and objects)."),
            ],
        )

    @classmethod
    def execute(cls, image, threshold):
        from ..pipelines.common.pose import blazepose_to_openpose18, openpose_json, render_openpose
        from ..pipelines.selfie_tools import person
        from ..pipelines.selfie_tools.ranking import voc_palette

        _require_mediapipe("Person Mask + Pose", image, "connect a person mask and POSE_KEYPOINT from other "
                                                        "nodes (e.g. comfyui_controlnet_aux's DWPose) downstream")
        rgb = image_to_uint8(image)
        bar = progress(rgb.shape[0])
        masks, poses, pictures, parts, lines = [], [], [], [], []
        palette = voc_palette(5)
        for i, frame in enumerate(rgb):
            found = person.detect_person(frame)
            lines.append(f"image {i + 1}: {found.summary(threshold)}")
            height, width = frame.shape[:2]
            masks.append(torch.from_numpy((found.mask > threshold).astype(np.float32)))
            lm = person.normalised_landmarks(found)
            people = [] if lm is None else [blazepose_to_openpose18(lm, width, height)]
            entry = openpose_json(people, width, height)
            poses.append(entry)
            pictures.append(torch.from_numpy(render_openpose(entry)).float() / 255.0)
            labels = person.coarse_parts(found, threshold)
            parts.append(torch.from_numpy(palette[labels]).float() / 255.0)
            bar.step()
        report = "\n".join(lines)
        if any(not entry["people"] for entry in poses):  # also in the server log, for API users
            logging.warning("Person Mask + Pose: %s", report)
        return io.NodeOutput(_out(torch.stack(masks)), poses, _out(torch.stack(pictures)), _out(torch.stack(parts)),
                             report)


class RecomposeMaskBox(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RecomposeMaskBox",
            display_name="Mask Bounding Box (scaled)",
            category=CATEGORY,
            description="Turns a mask into its filled bounding box grown about its centre. With a reference "
                        "photo's person mask and scale 1.1 this is Total Selfie's inpainting mask (thesis 3.5.3): a "
                        "box rather than a silhouette, so shadows and nearby regions can change too.",
            inputs=[
                io.Mask.Input("mask", tooltip="Any mask, e.g. 'Person Mask + Pose' of the chosen reference photo."),
                io.Float.Input("scale", default=1.1, min=0.1, max=4.0, step=0.01,
                               tooltip="How much the box grows about its centre (1.1 in the thesis)."),
            ],
            outputs=[io.Mask.Output(display_name="box_mask", tooltip="The filled, scaled box (clipped to the image).")],
        )

    @classmethod
    def execute(cls, mask, scale):
        from ..pipelines.selfie_tools.crop import scaled_box_mask

        masks = mask_to_b1hw(mask)[:, 0].cpu().numpy()
        return io.NodeOutput(_out(torch.stack([torch.from_numpy(scaled_box_mask(m, scale)) for m in masks])))


class RecomposeRankReferences(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..pipelines.selfie_tools.ranking import LABEL_SCHEMES

        return io.Schema(
            node_id="RecomposeRankReferences",
            display_name="Rank Reference Photos (clothing labels)",
            category=CATEGORY,
            description="Total Selfie's automatic target-pose selection (thesis 3.5.3): scores each candidate photo by "
                        "|P_r ∩ (P_u ∪ P_l ∪ P_s)|, the clothing labels (>= 5 px) it shares with the upper-body, "
                        "lower-body and shoes selfies (>= 21 px each), and returns the photos best first. Label maps "
                        "come from any human parser (index or PASCAL-VOC colour maps); with the scheme 'mediapipe "
                        "coarse parts' they are computed here from the photos themselves (offline fallback).",
            inputs=[
                io.Image.Input("photos", tooltip="Candidate full-body reference photos (a batch)."),
                io.Combo.Input("label_scheme", options=list(LABEL_SCHEMES), default="CIHP (M2FP)",
                               tooltip="What the label ids mean. 'mediapipe coarse parts' ignores the label-map "
                                       "inputs and parses the photos and selfies with mediapipe."),
                io.Image.Input("photo_label_maps", optional=True,
                               tooltip="Parsing maps of the candidate photos, same batch order."),
                io.Image.Input("upper_label_map", optional=True, tooltip="Parsing map of the upper-body selfie."),
                io.Image.Input("lower_label_map", optional=True, tooltip="Parsing map of the lower-body selfie."),
                io.Image.Input("shoes_label_map", optional=True, tooltip="Parsing map of the shoes selfie."),
                io.Image.Input("upper_selfie", optional=True,
                               tooltip="Upper-body selfie (used by the mediapipe scheme)."),
                io.Image.Input("lower_selfie", optional=True,
                               tooltip="Lower-body selfie (used by the mediapipe scheme)."),
                io.Image.Input("shoes_selfie", optional=True,
                               tooltip="Shoes selfie (mediapipe cannot parse shoe close-ups: a connected one counts "
                                       "as showing shoes)."),
            ],
            outputs=[
                io.Image.Output(display_name="ranked_photos", tooltip="The photos, best match first."),
                io.Image.Output(display_name="best_photo", tooltip="The best-matching photo."),
                io.Image.Output(display_name="ranked_label_maps", tooltip="The photos' label maps in the same order."),
                io.Int.Output(display_name="best_index", tooltip="0-based index of the best photo in the input batch."),
                io.String.Output(display_name="report", tooltip="Score and shared labels of every photo."),
            ],
        )

    @classmethod
    def execute(cls, photos, label_scheme, photo_label_maps=None, upper_label_map=None, lower_label_map=None,
                shoes_label_map=None, upper_selfie=None, lower_selfie=None, shoes_selfie=None):
        from ..pipelines.selfie_tools import ranking

        choice(label_scheme, ranking.LABEL_SCHEMES, "Rank References", "label_scheme")
        if label_scheme == "mediapipe coarse parts":
            from ..pipelines.selfie_tools.person import mediapipe_label_sets

            for name, value in (("photos", photos), ("upper_selfie", upper_selfie), ("lower_selfie", lower_selfie)):
                if value is not None:
                    _require_mediapipe("Rank Reference Photos (mediapipe scheme)", value,
                                       "choose a parser label scheme and connect the label maps", name)
            selfie_set, cand_labels = mediapipe_label_sets(
                image_to_uint8(photos), *[None if s is None else image_to_uint8(s[:1])[0]
                                          for s in (upper_selfie, lower_selfie, shoes_selfie)])
        else:
            if photo_label_maps is None:
                raise InputError("Connect 'photo_label_maps' (parsing maps of the photos), or choose the label "
                                 "scheme 'mediapipe coarse parts' to parse the photos here.")
            if photo_label_maps.shape[0] != photos.shape[0]:
                raise InputError(f"{photos.shape[0]} photos but {photo_label_maps.shape[0]} label maps.")
            classes = ranking.LABEL_SCHEMES[label_scheme]["classes"]

            def decode(img):
                return ranking.labels_from_image(img[0, ..., :3].cpu().numpy(), classes)

            selfie_set = ranking.selfie_labels(
                *[None if m is None else decode(m) for m in (upper_label_map, lower_label_map, shoes_label_map)],
                scheme=label_scheme)
            cand_labels = [decode(photo_label_maps[i:i + 1]) for i in range(photo_label_maps.shape[0])]
        result = ranking.rank_references(selfie_set, cand_labels, label_scheme)
        order = torch.tensor(result.order)
        maps = photo_label_maps if (photo_label_maps is not None and label_scheme != "mediapipe coarse parts") \
            else _label_pictures(cand_labels)
        return io.NodeOutput(_out(photos[order]), _out(photos[order[:1]]), _out(maps[order]), int(result.order[0]),
                             result.summary(label_scheme))


def _label_pictures(labels: list) -> torch.Tensor:
    from ..pipelines.selfie_tools.ranking import voc_palette

    palette = voc_palette(256)
    return torch.stack([torch.from_numpy(palette[lab.astype(np.int64)]).float() / 255.0 for lab in labels])


NODES = [RecomposeFaceAlignCrop, RecomposeRegionCrop, RecomposePasteCrop, RecomposePersonPose, RecomposeMaskBox,
         RecomposeRankReferences]
