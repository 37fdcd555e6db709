"""RLE helpers (pycocotools) round-trip masks exactly."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segzero_plus.masks import decode_rle, encode_rle, polygons_to_mask, rle_area


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip(mask):
    rle = encode_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str)
    json.dumps(rle)  # storable as plain JSON
    assert np.array_equal(decode_rle(rle), mask)
    assert rle_area(rle) == int(mask.sum())


def test_uncompressed_counts_and_polygons():
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:4] = True
    # column-major run lengths: 9 zeros, 2 ones, 2 zeros, 2 ones, 5 zeros
    assert np.array_equal(decode_rle({"size": [4, 5], "counts": [9, 2, 2, 2, 5]}), mask)
    square = polygons_to_mask([[10, 10, 30, 10, 30, 30, 10, 30]], 40, 40)
    assert 380 <= square.sum() <= 460 and square[20, 20] and not square[5, 5]
    assert not polygons_to_mask([], 3, 3).any()
