"""mediapipe-backed tools on real package images: face alignment, regions, person pose, fallback parts."""
import numpy as np
import pytest
import torch

from pipelines.common import InputError
from pipelines.common.pose import blazepose_to_openpose18, openpose_json, render_openpose
from pipelines.selfie_tools import align, crop, facemesh, person, regions

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def coffee():
    from skimage import data

    return data.coffee()


def test_face_mesh_finds_the_astronaut_in_pixels(astronaut):
    faces = facemesh.detect_faces(astronaut)
    assert len(faces) == 1 and faces[0].shape[1] == 3
    face = facemesh.pick_face(faces, -1)
    right, left = facemesh.eye_centres(face)
    assert right[0] < left[0]  # image-left eye first
    assert 150 < face[:, 0].mean() < 300 and 60 < face[:, 1].mean() < 200


def test_no_face_and_bad_index_are_clear_errors(coffee, astronaut):
    with pytest.raises(InputError, match="No face was found"):
        facemesh.pick_face(facemesh.detect_faces(coffee), -1)
    with pytest.raises(InputError, match="only 1 face"):
        facemesh.pick_face(facemesh.detect_faces(astronaut), 3)


def test_tiny_face_is_found_through_the_full_range_detector(astronaut):
    import cv2

    small = cv2.resize(astronaut, (96, 96), interpolation=cv2.INTER_AREA)  # face ~18 px wide
    canvas = np.full((640, 480, 3), 200, np.uint8)  # non-square
    canvas[300:396, 200:296] = small
    faces = facemesh.detect_faces(canvas)
    assert faces, "small face not found"
    assert 200 < faces[0][:, 0].mean() < 296 and 300 < faces[0][:, 1].mean() < 396


def test_ffhq_alignment_of_the_astronaut_puts_eyes_level_at_fixed_places(astronaut):
    face = facemesh.pick_face(facemesh.detect_faces(astronaut), -1)
    geo = align.align_crop(align.quad_from_mediapipe(face), astronaut.shape[:2], 256)
    eyes = np.stack(facemesh.eye_centres(face))[:, :2]
    in_crop = (geo.matrix @ np.c_[eyes, np.ones(2)].T).T
    assert abs(in_crop[0, 1] - in_crop[1, 1]) < 8
    assert 70 < in_crop[:, 1].mean() < 130 and in_crop[0, 0] < 128 < in_crop[1, 0]
    img = torch.from_numpy(astronaut).float().div(255).permute(2, 0, 1)[None]
    cut = crop.crop_images(img, crop.CropBatch([geo]))
    assert cut.shape == (1, 3, 256, 256) and torch.isfinite(cut).all()


def test_person_pose_parts_and_openpose_json(astronaut):
    found = person.detect_person(astronaut)
    assert found.landmarks is not None and found.mask.shape == (512, 512)
    assert 0.1 < (found.mask > 0.5).mean() < 0.9
    parts = person.coarse_parts(found)
    assert {person.HEAD, person.UPPER} <= set(np.unique(parts).tolist())
    # the head label sits above the upper-body label
    assert np.nonzero(parts == person.HEAD)[0].mean() < np.nonzero(parts == person.UPPER)[0].mean()
    kp = blazepose_to_openpose18(person.normalised_landmarks(found), 512, 512)
    entry = openpose_json([kp], 512, 512)
    assert len(entry["people"][0]["pose_keypoints_2d"]) == 54
    picture = render_openpose(entry)
    assert picture.shape == (512, 512, 3) and picture.max() > 0


def test_regions_face_hands_and_shoes_fallback(astronaut, coffee):
    x0, y0, x1, y1 = regions.region_box("face", astronaut)
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    with pytest.raises(InputError, match="shoes are not in the image"):  # he runs off the bottom edge
        regions.region_box("shoes", astronaut)
    with pytest.raises(InputError, match="needs a MASK"):
        regions.region_box("mask", astronaut)
    with pytest.raises(InputError):
        regions.region_box("left hand", coffee)


def test_align_and_paste_on_a_non_square_portrait():
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = np.asarray(Image.open(f).convert("RGB"))
    assert rgb.shape[0] != rgb.shape[1]
    face = facemesh.pick_face(facemesh.detect_faces(rgb), -1)
    geo = align.align_crop(align.quad_from_mediapipe(face), rgb.shape[:2], 128)
    img = torch.from_numpy(rgb.copy()).float().div(255).permute(2, 0, 1)[None]
    crops = crop.CropBatch([geo, geo])
    batch = torch.cat([img, img])
    cut = crop.crop_images(batch, crops)
    back, used = crop.paste_images(batch, 1 - cut, crops)  # an obvious "refinement"
    assert back.shape == batch.shape and used.shape == (2, *rgb.shape[:2])
    x, y = [int(v) for v in face[1, :2]]  # nose tip: replaced
    assert (back[0, :, y, x] - (1 - img[0, :, y, x])).abs().max() < 0.1
    assert torch.equal(back[:, :, :5, :5], batch[:, :, :5, :5])  # far corner untouched


@pytest.fixture(scope="module")
def full_body():
    """A real full-body photo that ships with ComfyUI's template media (a ComfyUI dependency)."""
    from importlib import resources

    from PIL import Image

    try:
        path = resources.files("comfyui_workflow_templates_media_api") / "templates" / \
            "api_moonvalley_video_to_video_pose_control-2.webp"
        return np.asarray(Image.open(path).convert("RGB"))
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("comfyui-workflow-templates-media-api is not installed")


def test_full_body_parts_hands_and_shoes(full_body):
    found = person.detect_person(full_body)
    parts = person.coarse_parts(found)
    rows = {p: np.nonzero(parts == p)[0].mean() for p in (person.HEAD, person.UPPER, person.LOWER, person.FEET)}
    assert rows[person.HEAD] < rows[person.UPPER] < rows[person.LOWER] < rows[person.FEET]
    shoes = regions.region_box("shoes", full_body)
    ankles_y = found.landmarks[[27, 28], 1].mean()
    assert shoes[1] < ankles_y < shoes[3] and shoes[3] > 0.8 * full_body.shape[0]
    left = regions.region_box("left hand", full_body)
    wrist = found.landmarks[15, :2]
    assert left[0] <= wrist[0] <= left[2] and left[1] <= wrist[1] <= left[3]


def test_mediapipe_ranking_prefers_the_full_body_photo(full_body, astronaut):
    import cv2

    from pipelines.selfie_tools.ranking import rank_references

    photos = [astronaut, cv2.resize(full_body, (512, 512))]
    selfies, labels = person.mediapipe_label_sets(photos, upper=astronaut, lower=full_body, shoes=full_body)
    assert selfies == {person.UPPER, person.LOWER, person.FEET}
    result = rank_references(selfies, labels, "mediapipe coarse parts")
    assert result.order == [1, 0] and result.scores[1] == 3


def test_no_person_gives_empty_pose_not_an_error(coffee):
    found = person.detect_person(coffee)
    assert found.landmarks is None and person.normalised_landmarks(found) is None
    assert person.coarse_parts(found).max() == 0
    entry = openpose_json([], *coffee.shape[1::-1])
    assert entry["people"] == [] and render_openpose(entry).max() == 0


def _grace_hopper():
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_no_person_means_an_empty_mask_and_a_warning(name):
    """mediapipe's segmentation alone marks 91 % of the cat and 23 % of the coffee photo as a person."""
    from skimage import data

    rgb = getattr(data, name)()
    found = person.detect_person(rgb)
    assert not found.found and found.mask.shape == rgb.shape[:2] and found.mask.max() == 0
    assert "no person found" in found.summary() and "empty" in found.summary()
    with pytest.raises(InputError, match="No person"):
        regions.region_box("shoes", rgb)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_real_people_keep_their_mask(name):
    from skimage import data

    rgb = data.astronaut() if name == "astronaut" else _grace_hopper()
    found = person.detect_person(rgb)
    share = (found.mask > 0.5).mean()
    assert found.found and 0.3 < share < 0.75
    assert f"{share:.0%}" in found.summary()
    # the mask sits on the person: the nose keypoint is inside it
    nose_x, nose_y = found.landmarks[0, :2].astype(int)
    assert found.mask[nose_y, nose_x] > 0.5


def test_the_closeup_mask_is_unconfirmed_segmentation(astronaut):
    """What only the ranking's close-up fallback uses: it marks the head and, wrongly, the cat too."""
    from skimage import data

    assert (person.closeup_mask(astronaut[60:260, 130:330]) > 0.5).mean() > 0.3
    assert (person.closeup_mask(data.chelsea()) > 0.5).mean() > 0.5


def test_shoes_of_a_person_who_ends_inside_the_frame_use_the_lowest_part_of_the_mask(astronaut):
    """Feet hidden from the pose model but the whole person in the picture: the mask's lowest strip."""
    import cv2

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512, 3), 235, np.uint8)
    canvas[64:320, 128:384] = small  # the person now ends at row 320, far above the bottom edge
    found = person.detect_person(canvas)
    assert found.found
    x0, y0, x1, y1 = regions.region_box("shoes", canvas)
    rows = np.nonzero(found.mask > 0.5)[0]
    assert y1 == rows.max() + 1 and y0 > rows.min() and 128 <= x0 < x1 <= 384


def test_region_boxes_are_clipped_to_the_image():
    assert regions.clip_box((-50, 10, 30, 700), 600, 512) == (0.0, 10.0, 30.0, 600.0)
    assert regions.clip_box((100, 601, 200, 900), 600, 512) is None  # wholly below the frame
    assert regions.clip_box((510, 10, 600, 20), 600, 512) is None  # 2 px inside: not visible


def test_feet_below_the_frame_are_refused_not_cropped(full_body):
    """The full-body photo cut above the ankles: its feet keypoints are predicted below the border."""
    found = person.detect_person(full_body)
    cut = np.ascontiguousarray(full_body[:int(found.landmarks[25:27, 1].mean())])  # cut at the knees
    assert person.detect_person(cut).found
    with pytest.raises(InputError, match="shoes are not in the image"):
        regions.region_box("shoes", cut)
