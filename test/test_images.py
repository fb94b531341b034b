"""Image and flow decoding from message fields: layouts, encodings and the errors that name the field."""

import cv2
import numpy as np
import pytest

from mots_ros.errors import InputError
from mots_ros.images import (
    check_image,
    compressed_size,
    decode_compressed,
    decode_flow,
    decode_image,
    encode_image,
    flow_problem,
)

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_encode_then_decode_round_trips(encoding):
    data, step = encode_image(RGB, encoding)
    decoded = decode_image(data, 4, 5, encoding, step)
    expected = np.repeat(RGB.mean(axis=2).astype(np.uint8)[..., None], 3, axis=2) if encoding == "mono8" else RGB
    np.testing.assert_array_equal(decoded, expected)


def test_tight_rgb8_is_a_view_and_padded_rows_are_accepted():
    data = RGB.tobytes()
    assert np.shares_memory(decode_image(np.frombuffer(data, np.uint8), 4, 5, "rgb8", 15), np.frombuffer(data, np.uint8))
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = RGB.reshape(4, 15)
    np.testing.assert_array_equal(decode_image(padded.tobytes(), 4, 5, "rgb8", 20), RGB)


@pytest.mark.parametrize("args, message", [
    ((RGB.tobytes(), 4, 5, "yuv422", 15), "unsupported image encoding 'yuv422'"),
    ((RGB.tobytes(), 4, 5, "rgb8", 10), "step 10 is smaller than width\\*channels = 15"),
    ((RGB.tobytes()[:-1], 4, 5, "rgb8", 15), "has 59 bytes, expected at least 60"),
    ((b"", 0, 5, "rgb8", 15), "image size 0x5 is empty"),
])
def test_bad_fields_are_named(args, message):
    with pytest.raises(InputError, match=message):
        decode_image(*args)


def test_oversized_frames_are_refused_before_any_decoding():
    with pytest.raises(InputError, match="exceeds the limit of 19 pixels"):
        decode_image(RGB.tobytes(), 4, 5, "rgb8", 15, max_pixels=19)
    png = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes()
    assert compressed_size(png) == (30, 40)
    with pytest.raises(InputError, match="30x40 exceeds the limit"):
        decode_compressed(png, max_pixels=100)


def test_compressed_images_decode_to_rgb_and_corrupt_ones_are_named():
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR order
    jpeg = cv2.imencode(".jpg", bgr)[1].tobytes()
    assert compressed_size(jpeg) == (8, 8)
    assert decode_compressed(jpeg)[..., 0].mean() > 200  # red comes first in RGB
    with pytest.raises(InputError, match="could not be decoded"):
        decode_compressed(b"\x00garbage")
    with pytest.raises(InputError, match="empty"):
        decode_compressed(b"")


def test_flow_decodes_both_byte_orders_and_problems_are_described():
    flow = np.random.default_rng(0).random((3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(decode_flow(flow.astype("<f4").tobytes(), 3, 4, "32FC2", 32), flow)
    np.testing.assert_array_equal(decode_flow(flow.astype(">f4").tobytes(), 3, 4, "32FC2", 32, True), flow)
    with pytest.raises(InputError, match="flow encoding must be 32FC2"):
        decode_flow(flow.tobytes(), 3, 4, "32FC1", 16)
    assert flow_problem(flow, 3, 4) is None and "does not match" in flow_problem(flow, 4, 4)
    bad = flow.copy()
    bad[0, 0, 0] = np.nan
    assert flow_problem(bad, 3, 4) == "flow has 1 non-finite values (NaN or inf)"


def test_check_image_names_what_is_wrong():
    check_image(RGB)
    for image, message in [(RGB[..., 0], "must be \\(H, W, 3\\)"), (RGB.astype(float), "must be uint8"), ([1], "numpy array")]:
        with pytest.raises(InputError, match=message):
            check_image(image)
