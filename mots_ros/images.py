"""Image and flow buffers to numpy, with checks that name what is wrong.

ROS-free: these functions take the fields of a ``sensor_msgs/Image`` (data, height, width,
encoding, step) as plain values, so the node, the bag tools and the tests share them.
"""

from __future__ import annotations

import numpy as np

from mots_ros.errors import InputError

#: Encodings accepted for camera images: channels, and whether the order is BGR.
IMAGE_ENCODINGS = {"rgb8": (3, False), "bgr8": (3, True), "mono8": (1, False), "rgba8": (4, False), "bgra8": (4, True)}
FLOW_ENCODING = "32FC2"
DEFAULT_MAX_PIXELS = 33_554_432  # 8192 x 4096


def check_image(image_rgb: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raises InputError unless ``image_rgb`` is a non-empty ``(H, W, 3) uint8`` array of sane size."""
    if not isinstance(image_rgb, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image_rgb).__name__}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3) RGB, got shape {image_rgb.shape}")
    if image_rgb.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {image_rgb.dtype}")
    height, width = image_rgb.shape[:2]
    _check_size(height, width, max_pixels)


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise InputError(f"image size {height}x{width} is empty")
    if height * width > max_pixels:
        raise InputError(f"image size {height}x{width} exceeds the limit of {max_pixels} pixels (node.max_image_pixels)")


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
        raise InputError(f"unsupported image encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    _check_size(height, width, max_pixels)
    channels, is_bgr = IMAGE_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise InputError(f"image step {step} is smaller than width*channels = {row_bytes} for {encoding} {height}x{width}")
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise InputError(
            f"image data has {buffer.size} bytes, expected at least {needed} for {encoding} {height}x{width} with step {step}"
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
    """``(height, width)`` from a PNG or JPEG header, or None for other or unreadable formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if data[:2] == b"\xff\xd8":
        position = 2
        while position + 9 <= len(data) and data[position] == 0xFF:
            marker, length = data[position + 1], int.from_bytes(data[position + 2 : position + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                return int.from_bytes(data[position + 5 : position + 7], "big"), int.from_bytes(data[position + 7 : position + 9], "big")
            position += 2 + length
    return None


def decode_compressed(data: bytes | bytearray | memoryview, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes a ``sensor_msgs/CompressedImage`` payload (JPEG, PNG, ...) to ``(H, W, 3) uint8`` RGB.

    The size in the header is checked before decoding, so a small file claiming a huge image
    cannot make the decoder allocate it.
    """
    import cv2

    data = bytes(data)
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:
        raise InputError("compressed image is empty")
    declared = compressed_size(data)
    if declared is not None:
        _check_size(*declared, max_pixels)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"compressed image of {buffer.size} bytes could not be decoded (corrupt or unknown format)")
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
        raise InputError(f"flow encoding must be {FLOW_ENCODING}, got {encoding!r}")
    _check_size(height, width, DEFAULT_MAX_PIXELS)
    row_bytes = width * 8
    if step < row_bytes:
        raise InputError(f"flow step {step} is smaller than width*8 = {row_bytes} for a {height}x{width} 32FC2 image")
    buffer = np.frombuffer(data, np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise InputError(f"flow data has {buffer.size} bytes, expected at least {needed} for {height}x{width} with step {step}")
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
        raise InputError(f"cannot encode images as {encoding!r}")
    pixels = np.ascontiguousarray(pixels)
    return pixels.tobytes(), pixels.shape[1] * pixels.shape[2]
