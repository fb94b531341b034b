"""Conversions between ROS messages and the core's plain types. Imports messages, never rclpy.

Works with rclpy message objects and with ``rosbags`` message objects alike where only field
access is needed (``height``, ``width``, ``encoding``, ``step``, ``data``, ``header.stamp``).
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from mots_ros.datasets import MotsRecord
from mots_ros.datatypes import FrameResult
from mots_ros.datatypes import stamp_to_ns as checked_stamp_ns
from mots_ros.images import decode_compressed, decode_flow, decode_image, encode_image
from mots_ros.masks import rle_from_string, rle_to_string
from mots_ros.msg import TrackedInstance, TrackedInstanceArray

MASK_ENCODING = "coco_rle"


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` to integer nanoseconds; InputError for a nanosec of a second or more."""
    return checked_stamp_ns(stamp.sec, stamp.nanosec)


def ns_to_stamp(stamp_ns: int, stamp) -> None:
    """Writes integer nanoseconds into a ``builtin_interfaces/Time`` in place."""
    stamp.sec, stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)


def image_to_rgb(msg, *, max_pixels: int) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, mono8, rgba8, bgra8; any row step) to ``(H, W, 3) uint8`` RGB."""
    return decode_image(msg.data, int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), max_pixels=max_pixels)


def compressed_to_rgb(msg, *, max_pixels: int) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG, PNG) to ``(H, W, 3) uint8`` RGB."""
    return decode_compressed(bytes(msg.data), max_pixels=max_pixels)


def flow_to_array(msg) -> np.ndarray:
    """32FC2 ``sensor_msgs/Image`` to ``(H, W, 2) float32`` flow."""
    return decode_flow(msg.data, int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), bool(msg.is_bigendian))


def rgb_to_image(image_rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    data, step = encode_image(image_rgb, encoding)
    msg = Image(header=header, height=image_rgb.shape[0], width=image_rgb.shape[1], encoding=encoding, step=step)
    msg.data = data
    return msg


def mono16_image(values: np.ndarray, header: Header) -> Image:
    """``(H, W) uint16`` array to a little-endian mono16 Image."""
    values = np.ascontiguousarray(values, dtype="<u2")
    msg = Image(header=header, height=values.shape[0], width=values.shape[1], encoding="mono16", is_bigendian=0,
                step=values.shape[1] * 2)
    msg.data = values.tobytes()
    return msg


def result_to_message(result: FrameResult, header: Header) -> TrackedInstanceArray:
    """FrameResult to TrackedInstanceArray; the header is copied verbatim from the input image."""
    msg = TrackedInstanceArray(header=header, image_height=result.image_height, image_width=result.image_width,
                               tracker_epoch=result.tracker_epoch)
    instances = []
    for tracked in result.instances:
        x0, y0, x1, y1 = tracked.bbox
        item = TrackedInstance(
            track_id=int(tracked.track_id),
            state=int(tracked.state),
            class_id=int(tracked.class_id),
            class_name=tracked.class_name,
            score=float(tracked.score),
            bbox=RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0 + 1, height=y1 - y0 + 1),
            mask_encoding=MASK_ENCODING,
        )
        item.mask_data = rle_to_string(tracked.rle).encode("ascii")
        item.embedding = tracked.embedding.astype(np.float32).tolist()
        instances.append(item)
    msg.instances = instances
    return msg


def message_to_records(msg, frame: int) -> list[MotsRecord]:
    """KITTI MOTS txt records of a TrackedInstanceArray (rclpy or rosbags object)."""
    records = []
    for item in msg.instances:
        if item.mask_encoding != MASK_ENCODING:
            continue
        counts = bytes(item.mask_data)
        records.append(MotsRecord(frame, int(item.track_id), int(item.class_id),
                                  rle_from_string(counts, int(msg.image_height), int(msg.image_width))))
    return records
