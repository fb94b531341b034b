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
    with pytest.raises(InputError, match="size cannot be read from the header, so it is not decoded"):
        decode_compressed(b"\x00garbage")
    with pytest.raises(InputError, match="could not be decoded"):
        decode_compressed(jpeg[:200])  # a readable header, then the data stops
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


# ---------------------------------------------------------------- decompression bombs (issue: hostile images)
def _patched_jpeg_sof(jpeg: bytes, height: int, width: int) -> bytes:
    at = next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2))
    return jpeg[: at + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[at + 9 :]


def _bombs() -> dict[str, bytes]:
    """Small files that declare huge images, one per format and trick."""
    tiny = np.zeros((8, 8, 3), np.uint8)
    jpeg = cv2.imencode(".jpg", tiny)[1].tobytes()
    progressive = cv2.imencode(".jpg", tiny, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    png = bytearray(cv2.imencode(".png", tiny)[1].tobytes())
    png[16:24] = (30000).to_bytes(4, "big") * 2
    bmp = bytearray(cv2.imencode(".bmp", tiny)[1].tobytes())
    bmp[18:26] = (30000).to_bytes(4, "little") + (-30000).to_bytes(4, "little", signed=True)
    lossless = bytearray(cv2.imencode(".webp", tiny, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes())
    lossless[21:25] = ((8000 - 1) | ((8000 - 1) << 14)).to_bytes(4, "little")
    lossy = bytearray(cv2.imencode(".webp", tiny, [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes())
    lossy[26:30] = (16000).to_bytes(2, "little") + (16000).to_bytes(2, "little")
    sof = _patched_jpeg_sof(jpeg, 8, 8)
    second_sof = sof[:2] + b"\xff\xc0\x00\x11\x08" + (30000).to_bytes(2, "big") * 2 + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + sof[2:]
    tiff = b"II*\x00" + (8).to_bytes(4, "little") + (2).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little") + (30000).to_bytes(4, "little")
        for tag in (256, 257)) + (0).to_bytes(4, "little")
    return {
        "jpeg_fill_byte_12000": b"\xff\xd8\xff" + _patched_jpeg_sof(jpeg, 12000, 12000)[2:],
        "jpeg_fill_byte_30000": b"\xff\xd8\xff\xff\xff" + _patched_jpeg_sof(jpeg, 30000, 30000)[2:],
        "jpeg_progressive": _patched_jpeg_sof(progressive, 30000, 30000),
        "jpeg_second_sof": second_sof,
        "png": bytes(png), "bmp": bytes(bmp), "webp_lossless_8000": bytes(lossless), "webp_lossy": bytes(lossy),
        "ppm": b"P6\n# a comment\n30000 30000\n255\n" + bytes(64),
        "tiff": tiff,
        "no_readable_size": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64),  # JPEG 2000: size not read, so not decoded
        "jpeg_without_frame": b"\xff\xd8\xff\xfe\x00\x04ab\xff\xd9",
    }


@pytest.mark.parametrize("name", sorted(_bombs()))
def test_bombs_are_refused_before_decoding(name):
    with pytest.raises(InputError, match="exceeds the limit|cannot be read from the header"):
        decode_compressed(_bombs()[name])


def test_headers_of_real_images_give_their_size_and_they_decode():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for suffix, options in [(".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".png", []), (".bmp", []),
                            (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
                            (".ppm", []), (".pgm", []), (".tiff", [])]:
        ok, encoded = cv2.imencode(suffix, image[..., 0] if suffix == ".pgm" else image, options)
        assert ok, suffix
        data = encoded.tobytes()
        assert compressed_size(data) == (37, 53), suffix
        assert decode_compressed(data).shape == (37, 53, 3), suffix


BOMB_PROBE = """
import sys
from mots_ros.errors import InputError
from mots_ros.images import decode_compressed  # first: it caps OpenCV before cv2 is imported
sys.path.insert(0, {test_dir!r})
from test_images import _bombs
import cv2, numpy as np
refused = 0
for name, data in _bombs().items():
    try:
        decode_compressed(data)
    except InputError:
        refused += 1
# OpenCV's own cap (set before cv2 was imported): a real 36-megapixel PNG is not decoded either
big = cv2.imencode(".png", np.zeros((6000, 6000), np.uint8))[1]
try:
    capped = cv2.imdecode(big, cv2.IMREAD_GRAYSCALE) is None
except cv2.error:
    capped = True
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(refused, len(_bombs()), capped, peak_kib // 1024)
"""


def test_bombs_in_a_fresh_process_stay_far_under_a_gigabyte():
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run([sys.executable, "-c", BOMB_PROBE.format(test_dir=str(Path(__file__).parent))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    refused, total, capped, peak_mib = run.stdout.split()
    assert refused == total and capped == "True"
    assert int(peak_mib) < 400, f"peak RSS {peak_mib} MiB"  # the 6000x6000 PNG is encoded here (36 MB)
