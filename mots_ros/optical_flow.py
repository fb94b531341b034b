"""Optical flow computed from the frames themselves, for streams that bring none (``flow.source: dis``).

OpenCV's DIS (dense inverse search) flow runs on the CPU in a few ms per KITTI-sized frame
(README, `mots-ros bench`). Its output follows the package's flow convention: ``(H, W, 2)
float32`` (dx, dy) in pixels from the previous frame to this one, indexed by the previous frame's
pixels (``previous(x) ≈ current(x + flow(x))``).
"""

from __future__ import annotations

import numpy as np

#: DIS presets by name (OpenCV's constants), fastest first.
DIS_PRESETS = ("ultrafast", "fast", "medium")


class DisFlow:
    """Flow from the previous frame to each new one, with ``cv2.DISOpticalFlow``.

    Args:
        preset: ``ultrafast``, ``fast`` or ``medium`` (OpenCV's DIS presets).
    """

    def __init__(self, preset: str = "fast") -> None:
        import cv2

        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, got {preset!r}")
        constant = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self._dis = cv2.DISOpticalFlow.create(constant)
        self._cv2 = cv2
        self.preset = preset
        self._previous_gray: np.ndarray | None = None

    def reset(self) -> None:
        """Forgets the previous frame: the next one has no flow."""
        self._previous_gray = None

    def next_flow(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """Flow from the previous frame to ``image_rgb`` (``(H, W, 3) uint8``), then remembers it.

        Returns None for the first frame, and when the frame size changed.
        """
        gray = self._cv2.cvtColor(image_rgb, self._cv2.COLOR_RGB2GRAY)
        previous, self._previous_gray = self._previous_gray, gray
        if previous is None or previous.shape != gray.shape:
            return None
        # None lets OpenCV allocate the output; its stubs only know the buffer form
        return np.asarray(self._dis.calc(previous, gray, None), np.float32)  # type: ignore[call-overload]

    def remember(self, image_rgb: np.ndarray) -> None:
        """Takes a frame as the previous one without computing flow (its flow came from elsewhere)."""
        self._previous_gray = self._cv2.cvtColor(image_rgb, self._cv2.COLOR_RGB2GRAY)
