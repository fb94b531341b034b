"""rosbag2 files through ``rosbags`` (pure Python, no ROS install): image folders to bags, bags to frames.

Bags written here hold ``/camera/image`` (sensor_msgs/Image), ``/camera/camera_info`` and,
optionally, ``/camera/flow`` (32FC2, previous frame to this one), stored as MCAP.

Stamps encode the frame number: ``stamp = STAMP_ORIGIN + frame / fps``. A recorder that knows the
frame rate therefore writes KITTI MOTS / MOTSChallenge frame numbers back exactly, whatever the
first frame's number. The frame rate, origin and sequence name are also kept in the bag's
custom metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mots_ros.datasets import list_frames, read_image_rgb
from mots_ros.datatypes import stamp_to_ns
from mots_ros.errors import FormatError, InputError
from mots_ros.images import DEFAULT_MAX_PIXELS, decode_compressed, decode_flow, decode_image

IMAGE_TOPIC = "/camera/image"
COMPRESSED_TOPIC = "/camera/image/compressed"
INFO_TOPIC = "/camera/camera_info"
FLOW_TOPIC = "/camera/flow"
STAMP_ORIGIN_NS = 1_700_000_000 * 1_000_000_000

logger = logging.getLogger(__name__)


def frame_stamp_ns(frame: int, fps: float, origin_ns: int = STAMP_ORIGIN_NS) -> int:
    return origin_ns + int(round(frame * 1e9 / fps))


def stamp_frame(stamp_ns: int, fps: float, origin_ns: int = STAMP_ORIGIN_NS) -> int:
    return int(round((stamp_ns - origin_ns) * fps / 1e9))


def typestore():
    """A Kilted typestore that also knows mots_ros/msg/TrackedInstance(Array)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    for name in ("TrackedInstance", "TrackedInstanceArray"):
        text = _msg_definition(name)
        store.register(get_types_from_msg(text, f"mots_ros/msg/{name}"))
    return store


def _msg_definition(name: str) -> str:
    import sys

    for folder in (Path(__file__).resolve().parent.parent / "msg", Path(sys.prefix) / "share" / "mots_ros" / "msg"):
        if (folder / f"{name}.msg").is_file():
            return (folder / f"{name}.msg").read_text()
    raise FormatError(f"message definition {name}.msg not found; reinstall mots_ros")


def _header(store, stamp_ns: int, frame_id: str):
    time_type = store.types["builtin_interfaces/msg/Time"]
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return store.types["std_msgs/msg/Header"](stamp=time_type(sec=sec, nanosec=nanosec), frame_id=frame_id)


@dataclass(frozen=True)
class BagSummary:
    path: Path
    frames: int
    flows: int
    fps: float


def images_to_bag(
    image_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fps: float = 10.0,
    flow_dir: str | os.PathLike | None = None,
    encoding: str = "rgb8",
    compressed: bool = False,
    frame_id: str = "camera_optical_frame",
    sequence: str | None = None,
    first: int | None = None,
    last: int | None = None,
    progress: bool = False,
) -> BagSummary:
    """Writes an image folder (frames named by number) as an MCAP rosbag2.

    Args:
        image_dir: ``images/<seq>/`` folder.
        out: bag folder to create (must not exist).
        fps: sequence rate; sets the stamps.
        flow_dir: folder of ``<frame>.npy`` flows (previous to this frame), written to /camera/flow.
        encoding: rgb8, bgr8 or mono8 for raw images.
        compressed: write PNG CompressedImage on /camera/image/compressed instead of raw images.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    from mots_ros.images import encode_image

    store = typestore()
    out = Path(out)
    if out.exists():
        raise FormatError(f"{out} already exists; choose a new bag folder")
    frames = [(f, p) for f, p in list_frames(image_dir) if (first is None or f >= first) and (last is None or f <= last)]
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, unit="frame", desc="bag")
    Image, CompressedImage = store.types["sensor_msgs/msg/Image"], store.types["sensor_msgs/msg/CompressedImage"]
    CameraInfo, RegionOfInterest = store.types["sensor_msgs/msg/CameraInfo"], store.types["sensor_msgs/msg/RegionOfInterest"]
    written = flows = 0
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        image_connection = writer.add_connection(COMPRESSED_TOPIC if compressed else IMAGE_TOPIC, image_type, typestore=store)
        info_connection = writer.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=store)
        flow_connection = writer.add_connection(FLOW_TOPIC, "sensor_msgs/msg/Image", typestore=store) if flow_dir else None
        for frame, path in frames:
            stamp = frame_stamp_ns(frame, fps)
            image = read_image_rgb(path)
            header = _header(store, stamp, frame_id)
            if compressed:
                payload = np.frombuffer(cv2.imencode(".png", image[..., ::-1])[1].tobytes(), np.uint8)
                message = CompressedImage(header=header, format="png", data=payload)
            else:
                data, step = encode_image(image, encoding)
                message = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                                is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8))
            writer.write(image_connection, stamp, store.serialize_cdr(message, image_type))
            info = CameraInfo(
                header=header, height=image.shape[0], width=image.shape[1], distortion_model="plumb_bob",
                d=np.zeros(0), k=np.zeros(9), r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            )
            writer.write(info_connection, stamp, store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            flow_path = Path(flow_dir) / f"{frame:06d}.npy" if flow_dir else None
            if flow_connection is not None and flow_path.is_file():
                flow = np.ascontiguousarray(np.load(flow_path).astype("<f4"))
                message = Image(header=header, height=flow.shape[0], width=flow.shape[1], encoding="32FC2",
                                is_bigendian=0, step=flow.shape[1] * 8, data=flow.view(np.uint8).ravel())
                writer.write(flow_connection, stamp, store.serialize_cdr(message, "sensor_msgs/msg/Image"))
                flows += 1
            written += 1
        writer.set_custom_data("mots_ros.fps", repr(float(fps)))
        writer.set_custom_data("mots_ros.stamp_origin_ns", str(STAMP_ORIGIN_NS))
        writer.set_custom_data("mots_ros.sequence", sequence or Path(image_dir).name)
    return BagSummary(out, written, flows, fps)


@dataclass(frozen=True)
class BagFrame:
    stamp_ns: int
    image_rgb: np.ndarray | None  # None when the image could not be decoded
    flow: np.ndarray | None
    problem: str | None = None


def bag_metadata(bag: str | os.PathLike) -> dict[str, str]:
    """The custom metadata written by :func:`images_to_bag` (empty for other bags)."""
    import yaml

    path = Path(bag) / "metadata.yaml"
    if not path.is_file():
        if _mcap_files(Path(bag)):
            return {}  # a recorder killed before writing metadata; BagReader salvages the messages
        raise FormatError(f"{bag}: not a rosbag2 folder (no metadata.yaml and no .mcap file)")
    try:
        info = (yaml.safe_load(path.read_text()) or {}).get("rosbag2_bagfile_information", {})
    except (yaml.YAMLError, AttributeError) as err:
        raise FormatError(f"{path}: not a rosbag2 metadata file ({err})") from err
    return {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}


@dataclass(frozen=True)
class BagConnection:
    """One topic of a bag: its name and message type (``sensor_msgs/msg/Image``)."""

    topic: str
    msgtype: str


class BagReader:
    """A bag's messages in bag-time order, streamed, also from a bag whose recorder died.

    A sound bag is read with ``rosbags``. A damaged one (no ``metadata.yaml``, or an MCAP file cut
    short: "File end magic is invalid") is salvaged: its records are read in file order up to the
    damage, and :attr:`damage` says where that was. Use as a context manager.

    Raises:
        FormatError: naming the file, when not even a salvage can read it.
    """

    def __init__(self, bag: str | os.PathLike):
        self.bag = Path(bag)
        self.damage: str | None = None
        self.salvaged = 0
        self._reader = None
        if not self.bag.exists():
            raise FormatError(f"{self.bag}: no such bag")

    def __enter__(self) -> BagReader:
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError

        try:
            self._reader = Reader(self.bag)
            self._reader.open()
            self.connections = [BagConnection(c.topic, c.msgtype) for c in self._reader.connections]
        except (ReaderError, FileNotFoundError, KeyError, ValueError) as err:
            self._reader = None
            files = _mcap_files(self.bag)
            if not files:
                raise FormatError(f"{self.bag}: cannot be read ({err}) and holds no .mcap file to salvage") from err
            self.damage = f"{err}"
            self._files = files
            self.connections = sorted({c for path in files for c, _, _ in _salvage_mcap(path, channels_only=True)},
                                      key=lambda c: c.topic)
            logger.warning("%s is damaged (%s): salvaging its messages from %s", self.bag, err,
                           ", ".join(str(f) for f in files))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()
        if self.damage is not None:
            logger.warning("%s: salvaged %d messages, up to the damage", self.bag, self.salvaged)

    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[BagConnection, int, bytes]]:
        """``(connection, bag_time_ns, cdr_bytes)`` of the chosen topics (all by default)."""
        if self._reader is not None:
            wanted = [c for c in self._reader.connections if topics is None or c.topic in topics]
            for connection, bag_time, raw in self._reader.messages(connections=wanted):
                yield BagConnection(connection.topic, connection.msgtype), bag_time, bytes(raw)
            return
        for path in self._files:
            for connection, bag_time, raw in _salvage_mcap(path):
                if topics is None or connection.topic in topics:
                    self.salvaged += 1
                    yield connection, bag_time, raw


def _mcap_files(bag: Path) -> list[Path]:
    return sorted(bag.glob("*.mcap")) if bag.is_dir() else ([bag] if bag.suffix == ".mcap" else [])


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _salvage_mcap(path: Path, *, channels_only: bool = False) -> Iterator[tuple[BagConnection, int, bytes]]:
    """The complete records of an MCAP file in file order, stopping quietly at the first damaged one.

    Reads Schema, Channel and Message records, also inside uncompressed chunks (compressed chunks end
    the salvage). With ``channels_only``, yields ``(connection, 0, b"")`` once per channel.
    """
    import struct

    data = path.read_bytes()
    if not data.startswith(_MCAP_MAGIC):
        raise FormatError(f"{path}: not an MCAP file (its first bytes are not the MCAP magic)")
    schemas: dict[int, str] = {}
    channels: dict[int, BagConnection] = {}

    def string(buffer: bytes, at: int) -> tuple[str, int]:
        length = struct.unpack_from("<I", buffer, at)[0]
        return buffer[at + 4 : at + 4 + length].decode("utf-8"), at + 4 + length

    def records(buffer: bytes, at: int) -> Iterator[tuple[int, bytes]]:
        while at + 9 <= len(buffer):
            opcode, length = buffer[at], struct.unpack_from("<Q", buffer, at + 1)[0]
            if at + 9 + length > len(buffer):
                if opcode == 0x06:  # a chunk cut short: the complete records at its start still count
                    yield opcode, buffer[at + 9 :]
                return
            yield opcode, buffer[at + 9 : at + 9 + length]
            at += 9 + length

    def walk(buffer: bytes, at: int) -> Iterator[tuple[BagConnection, int, bytes]]:
        for opcode, content in records(buffer, at):
            if opcode == 0x03:  # Schema: id, name, encoding, data
                schemas[struct.unpack_from("<H", content, 0)[0]] = string(content, 2)[0]
            elif opcode == 0x04:  # Channel: id, schema id, topic, encoding, metadata
                channel_id, schema_id = struct.unpack_from("<HH", content, 0)
                if channel_id not in channels and schema_id in schemas:
                    channels[channel_id] = BagConnection(string(content, 4)[0], schemas[schema_id])
                    if channels_only:
                        yield channels[channel_id], 0, b""
            elif opcode == 0x05 and not channels_only:  # Message: channel, sequence, log time, publish time, data
                channel_id, _, log_time = struct.unpack_from("<HIQ", content, 0)
                if channel_id in channels:
                    yield channels[channel_id], log_time, content[22:]
            elif opcode == 0x06 and len(content) >= 40:  # Chunk: times, size, crc, compression, records
                compression, records_at = string(content, 28)
                if compression:
                    logger.warning("%s: a %s-compressed chunk ends the salvage", path, compression)
                    return
                size = struct.unpack_from("<Q", content, records_at)[0]
                yield from walk(content[records_at + 8 : records_at + 8 + size], 0)

    yield from walk(data, len(_MCAP_MAGIC))


def read_bag_frames(
    bag: str | os.PathLike,
    *,
    image_topic: str | None = None,
    flow_topic: str | None = FLOW_TOPIC,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[BagFrame]:
    """Every image of the bag in bag-time order, decoded as the node decodes it, with its flow.

    Frames come in the order a replay publishes them, each with the flow of the same stamp.

    The bag is streamed, so a long recording never sits in memory whole, and a damaged one is read
    up to the damage (:class:`BagReader`). A flow is matched when it is recorded at the same bag
    time as its image or before it. A malformed image yields a frame with ``image_rgb=None`` and
    the reason, so callers can count and report it instead of stopping.

    Raises:
        FormatError: the bag cannot be read, or has no image topic (naming its topics).
    """
    store = typestore()
    with BagReader(bag) as reader:
        topics = {c.topic: c for c in reader.connections}
        image_topic = image_topic or (IMAGE_TOPIC if IMAGE_TOPIC in topics else COMPRESSED_TOPIC)
        if image_topic not in topics:
            raise FormatError(f"{bag}: no image topic {image_topic}; topics are {sorted(topics)}")
        wanted = [image_topic] + ([flow_topic] if flow_topic in topics else [])
        flows: dict[int, object] = {}
        pending = None  # (bag time, stamp, msgtype, message) of an image that may still get its flow
        for connection, bag_time, raw in reader.messages(wanted):
            if pending is not None and bag_time > pending[0]:
                yield _bag_frame(*pending[1:], flows.pop(pending[1], None), max_pixels)
                pending = None
            try:
                message = store.deserialize_cdr(raw, connection.msgtype)
                stamp = stamp_to_ns(message.header.stamp.sec, message.header.stamp.nanosec)
            except Exception as err:  # rosbags raises its own types; a damaged record must not end the read
                logger.error("%s: a %s message at bag time %d is unreadable (%s); skipped", bag, connection.topic,
                             bag_time, err)
                continue
            if connection.topic != image_topic:
                flows[stamp] = message
                while len(flows) > _MAX_UNMATCHED_FLOWS:
                    flows.pop(next(iter(flows)))
                continue
            if pending is not None:
                yield _bag_frame(*pending[1:], flows.pop(pending[1], None), max_pixels)
            pending = (bag_time, stamp, connection.msgtype, message)
        if pending is not None:
            yield _bag_frame(*pending[1:], flows.pop(pending[1], None), max_pixels)


_MAX_UNMATCHED_FLOWS = 64  # flows kept while waiting for their image, like the node's buffer


def _bag_frame(stamp: int, msgtype: str, message, flow_message, max_pixels: int) -> BagFrame:
    try:
        if msgtype.endswith("CompressedImage"):
            image = decode_compressed(bytes(message.data), max_pixels=max_pixels)
        else:
            image = decode_image(message.data, message.height, message.width, message.encoding, message.step,
                                 max_pixels=max_pixels)
    except InputError as err:
        return BagFrame(stamp, None, None, str(err))
    flow = None
    if flow_message is not None:
        try:
            flow = decode_flow(flow_message.data, flow_message.height, flow_message.width, flow_message.encoding,
                               flow_message.step, bool(flow_message.is_bigendian))
        except InputError:
            flow = None  # the pipeline goes on without flow, as the node does
    return BagFrame(stamp, image, flow)
