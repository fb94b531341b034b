"""Image and flow buffers to numpy, with checks that name what is wrong.

ROS-free: these functions take the fields of a ``sensor_msgs/Image`` (data, height, width,
encoding, step) as plain values, so the node, the bag tools and the tests share them.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

import numpy as np

from mots_ros.errors import InputError

#: Encodings accepted for camera images: channels, and whether the order is BGR.
IMAGE_ENCODINGS = {"rgb8": (3, False), "bgr8": (3, True), "mono8": (1, False), "rgba8": (4, False), "bgra8": (4, True)}
FLOW_ENCODING = "32FC2"
DEFAULT_MAX_PIXELS = 33_554_432  # 8192 x 4096


def check_image(image_rgb: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raises InputError unless ``image_rgb`` is a non-empty ``(H, W, 3) uint8`` array of sane size."""
    if not isinstance(image_rgb, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image_rgb).__name__}", kind="array")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3) RGB, got shape {image_rgb.shape}", kind="shape")
    if image_rgb.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {image_rgb.dtype}", kind="dtype")
    height, width = image_rgb.shape[:2]
    _check_size(height, width, max_pixels)


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise InputError(f"image size {height}x{width} is empty", kind="empty")
    if height * width > max_pixels:
        raise InputError(f"image size {height}x{width} exceeds the limit of {max_pixels} pixels (node.max_image_pixels)",
                         kind="size")


def decode_image(
    data: bytes | bytearray | memoryview | np.ndarray,
    height: int,
    width: int,
    encoding: str,
    step: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Converts raw ``sensor_msgs/Image`` fields to ``(H, W, 3) uint8`` RGB.

    rgb8 with a tight row step comes back as a zero-copy view of ``data``; other layouts are
    copied once. Any row step at least ``width * channels`` is accepted (padded rows).

    Raises:
        InputError: unknown encoding, empty or oversized image, or a step/length that does not fit.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise InputError(f"unsupported image encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}",
                         kind="encoding")
    _check_size(height, width, max_pixels)
    channels, is_bgr = IMAGE_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise InputError(f"image step {step} is smaller than width*channels = {row_bytes} for {encoding} {height}x{width}",
                         kind="step")
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise InputError(
            f"image data has {buffer.size} bytes, expected at least {needed} for {encoding} {height}x{width} with step {step}",
            kind="length",
        )
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if is_bgr:
        return np.ascontiguousarray(pixels[..., 2::-1])
    if channels == 4:
        return np.ascontiguousarray(pixels[..., :3])
    return pixels if step == row_bytes else np.ascontiguousarray(pixels)


def compressed_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` declared in an image file's header, or None for other or unreadable headers.

    Read: JPEG, PNG, WebP, BMP, PNM (PBM, PGM, PPM, PAM, PFM) and TIFF.

    JPEG: every frame header (SOF0-SOF15, any number of 0xFF fill bytes before a marker, also after
    the scans of a progressive file); the largest counts. TIFF: every image directory; the largest
    counts.
    """
    readers = ((b"\xff\xd8", _jpeg_size), (b"\x89PNG\r\n\x1a\n", _png_size), (b"RIFF", _webp_size), (b"BM", _bmp_size),
               (b"II*\x00", _tiff_size), (b"MM\x00*", _tiff_size), (b"P", _pnm_size))
    for magic, reader in readers:
        if data.startswith(magic):
            try:
                return reader(data)
            except (IndexError, ValueError):
                return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    sizes = []
    position, end = 2, len(data)
    while position < end:
        if data[position] != 0xFF:  # entropy-coded data after a scan: find the next marker
            position = data.find(b"\xff", position)
            if position < 0:
                break
            continue
        while position < end and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= end:
            break
        marker = data[position]
        position += 1
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stuffed byte, restart markers, TEM
            continue
        if marker == 0xD9:  # end of image
            break
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height = int.from_bytes(data[position + 3 : position + 5], "big")
            width = int.from_bytes(data[position + 5 : position + 7], "big")
            sizes.append((height, width))
        position += length
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[28:30], "little") & 0x3FFF, int.from_bytes(data[26:28], "little") & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[27:30], "little") + 1, int.from_bytes(data[24:27], "little") + 1
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    header = int.from_bytes(data[14:18], "little")
    if header == 12:  # OS/2 core header: 16-bit sizes
        return int.from_bytes(data[20:22], "little"), int.from_bytes(data[18:20], "little")
    if header < 40 or len(data) < 26:
        return None
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)  # negative: rows stored top-down
    return abs(height), abs(width)


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    kind = data[1:2]
    if kind == b"7":  # PAM: "WIDTH w" and "HEIGHT h" lines before ENDHDR
        header = data[: data.find(b"ENDHDR")].decode("ascii", "replace").split()
        values = dict(zip(header[1::2], header[2::2]))
        return int(values["HEIGHT"]), int(values["WIDTH"])
    if kind not in (b"1", b"2", b"3", b"4", b"5", b"6", b"F", b"f"):
        return None
    tokens: list[bytes] = []
    for line in data[2:4096].splitlines():
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[1]), int(tokens[0])
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    sizes: list[tuple[int, int]] = []
    visited: set[int] = set()
    while offset and offset not in visited and len(visited) < 64:  # every image directory, no cycles
        visited.add(offset)
        count = int.from_bytes(data[offset : offset + 2], order)
        fields = {}
        for entry in range(count):
            at = offset + 2 + 12 * entry
            tag, kind = int.from_bytes(data[at : at + 2], order), int.from_bytes(data[at + 2 : at + 4], order)
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                size = 2 if kind == 3 else 4
                fields[tag] = int.from_bytes(data[at + 8 : at + 8 + size], order)
        if 256 not in fields or 257 not in fields:
            return None
        sizes.append((fields[257], fields[256]))
        offset = int.from_bytes(data[offset + 2 + 12 * count : offset + 6 + 12 * count], order)
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def cap_opencv_decoder(max_pixels: int = DEFAULT_MAX_PIXELS) -> bool:
    """Caps OpenCV's own decoders at ``max_pixels`` (``OPENCV_IO_MAX_IMAGE_PIXELS``).

    OpenCV reads the variable once, when cv2 is imported, so this only takes effect before that;
    returns whether the cap in force is ``max_pixels``.
    """
    if "cv2" not in sys.modules:
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)
    return os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS") == str(max_pixels)


# Before anything imports cv2 (a caller may still choose another cap first, or set the variable itself).
if "cv2" not in sys.modules:
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))


def decode_compressed(data: bytes | bytearray | memoryview, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes a ``sensor_msgs/CompressedImage`` payload to ``(H, W, 3) uint8`` RGB.

    The size in the header is checked before decoding, so a small file claiming a huge image
    cannot make the decoder allocate it, and a file whose size cannot be read from its header
    is never decoded (formats: those of :func:`compressed_size`).
    """
    data = bytes(data)
    if not data:
        raise InputError("compressed image is empty", kind="empty")
    declared = compressed_size(data)
    if declared is None:
        raise InputError(f"compressed image of {len(data)} bytes: its size cannot be read from the header, so it is "
                         "not decoded (JPEG, PNG, WebP, BMP, PNM and TIFF are read)", kind="header")
    _check_size(*declared, max_pixels)
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"compressed image of {len(data)} bytes could not be decoded (corrupt or unknown format)",
                         kind="decode")
    _check_size(bgr.shape[0], bgr.shape[1], max_pixels)
    return np.ascontiguousarray(bgr[..., ::-1])


def decode_flow(
    data: bytes | bytearray | memoryview,
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: bool = False,
) -> np.ndarray:
    """Converts a 32FC2 ``sensor_msgs/Image`` to ``(H, W, 2) float32`` flow (dx, dy) in pixels."""
    if encoding != FLOW_ENCODING:
        raise InputError(f"flow encoding must be {FLOW_ENCODING}, got {encoding!r}", kind="encoding")
    _check_size(height, width, DEFAULT_MAX_PIXELS)
    row_bytes = width * 8
    if step < row_bytes:
        raise InputError(f"flow step {step} is smaller than width*8 = {row_bytes} for a {height}x{width} 32FC2 image",
                         kind="step")
    buffer = np.frombuffer(data, np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise InputError(f"flow data has {buffer.size} bytes, expected at least {needed} for {height}x{width} with step "
                         f"{step}", kind="length")
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    dtype = np.dtype(">f4" if is_bigendian else "<f4")
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width, 2).astype(np.float32)


def flow_problem(flow: np.ndarray | None, height: int, width: int) -> str | None:
    """Why ``flow`` cannot be used with a ``height x width`` frame, or None if it can."""
    if flow is None:
        return None
    if not isinstance(flow, np.ndarray) or flow.shape != (height, width, 2):
        shape = getattr(flow, "shape", type(flow).__name__)
        return f"flow shape {shape} does not match the image ({height}, {width}, 2)"
    if not np.issubdtype(flow.dtype, np.floating):
        return f"flow must be floating point, got {flow.dtype}"
    if not np.isfinite(flow).all():
        return f"flow has {int((~np.isfinite(flow)).sum())} non-finite values (NaN or inf)"
    return None


def encode_image(image_rgb: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int]:
    """``(data, step)`` of an RGB image in ``rgb8``, ``bgr8`` or ``mono8``, for building messages."""
    if encoding == "rgb8":
        pixels = image_rgb
    elif encoding == "bgr8":
        pixels = image_rgb[..., ::-1]
    elif encoding == "mono8":
        pixels = image_rgb.mean(axis=2).astype(np.uint8)[..., None]
    else:
        raise InputError(f"cannot encode images as {encoding!r}", kind="encoding")
    pixels = np.ascontiguousarray(pixels)
    return pixels.tobytes(), pixels.shape[1] * pixels.shape[2]
