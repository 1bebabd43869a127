"""Reference-photo ranking (thesis 3.5.3): thresholds, categories, label-map decoding."""
import numpy as np
import pytest

from pipelines.common import InputError
from pipelines.selfie_tools.ranking import (REFERENCE_MIN_PIXELS, SELFIE_MIN_PIXELS, labels_from_image, rank_references,
                                            reference_labels, selfie_labels, voc_palette)

UPPER, COAT, PANTS, SKIRT, FACE, LEFT_SHOE, RIGHT_SHOE = 5, 7, 9, 12, 13, 18, 19  # CIHP ids


def label_map(counts: dict, size=(40, 40)) -> np.ndarray:
    """A map holding ``count`` pixels of each label (rest background)."""
    flat = np.zeros(size[0] * size[1], np.int64)
    start = 0
    for label, count in counts.items():
        flat[start:start + count] = label
        start += count
    return flat.reshape(size)


def test_selfie_sets_use_21_pixels_and_their_own_category():
    upper = label_map({UPPER: SELFIE_MIN_PIXELS, COAT: SELFIE_MIN_PIXELS - 1, PANTS: 100, FACE: 100})
    lower = label_map({PANTS: 30, UPPER: 30})
    shoes = label_map({LEFT_SHOE: 25, RIGHT_SHOE: 3})
    # coat below threshold, pants/face not upper clothes, upper clothes not lower, right shoe too small
    assert selfie_labels(upper, lower, shoes) == {UPPER, PANTS, LEFT_SHOE}


def test_reference_set_uses_5_pixels_and_clothing_only():
    ref = label_map({UPPER: REFERENCE_MIN_PIXELS, SKIRT: REFERENCE_MIN_PIXELS - 1, FACE: 200, RIGHT_SHOE: 9})
    assert reference_labels(ref) == {UPPER, RIGHT_SHOE}


def test_ranking_orders_by_shared_labels_and_keeps_ties_stable():
    selfies = {UPPER, PANTS, LEFT_SHOE}
    cands = [label_map({UPPER: 50}),                                  # 1 shared
             label_map({UPPER: 50, PANTS: 50, LEFT_SHOE: 9}),         # 3 shared
             label_map({COAT: 50, SKIRT: 50}),                        # 0 shared
             label_map({PANTS: 50})]                                  # 1 shared
    result = rank_references(selfies, cands)
    assert result.scores == [1, 3, 0, 1]
    assert result.order == [1, 0, 3, 2]
    assert "rank 1: photo 2, score 3" in result.summary("CIHP (M2FP)")


def test_no_selfie_labels_is_a_clear_error():
    with pytest.raises(InputError, match="21 pixels"):
        rank_references(set(), [label_map({UPPER: 50})])
    with pytest.raises(InputError, match="Unknown label scheme"):
        selfie_labels(label_map({UPPER: 50}), scheme="nope")


def test_label_maps_decode_from_index_and_voc_colour_pictures():
    labels = label_map({UPPER: 100, PANTS: 100, RIGHT_SHOE: 50})
    index_picture = np.repeat(labels[..., None], 3, -1) / 255.0
    assert np.array_equal(labels_from_image(index_picture, 20), labels)
    colour_picture = voc_palette(20)[labels] / 255.0
    assert np.array_equal(labels_from_image(colour_picture, 20), labels)
    noisy = np.clip(colour_picture + 3 / 255.0, 0, 1)  # resized/JPEG'd maps are near, not on, the palette
    assert np.array_equal(labels_from_image(noisy, 20), labels)


def test_voc_palette_matches_the_parsers_colours():
    pal = voc_palette(20)
    assert tuple(pal[0]) == (0, 0, 0) and tuple(pal[1]) == (128, 0, 0) and tuple(pal[5]) == (128, 0, 128)
    assert tuple(pal[13]) == (192, 0, 128) and tuple(pal[19]) == (128, 192, 0)
