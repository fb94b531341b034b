"""Car and pedestrian appearance, drawn in a sprite's local coordinates.

A sprite is a fronto-parallel billboard. ``a`` (0 left .. 1 right) and ``b`` (0 top .. 1 bottom)
are its local coordinates; each function returns which points are covered and their RGB colour.
Because pixels are functions of (a, b), the same physical point is found again in the next frame
by mapping (a, b) through the next frame's sprite box: that is what makes the flow exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Car body colours: several near-identical pairs, so appearance alone is ambiguous.
CAR_PALETTE = np.array(
    [
        (182, 184, 188), (176, 179, 184), (171, 173, 177),  # silvers
        (236, 236, 232), (229, 230, 228),  # whites
        (32, 33, 36), (38, 38, 42),  # blacks
        (110, 112, 118), (104, 106, 112),  # greys
        (28, 44, 96), (32, 48, 102),  # dark blues
        (150, 22, 24), (158, 28, 26),  # reds
        (40, 84, 52), (120, 96, 60), (196, 160, 40),  # green, bronze, yellow
    ],
    np.float32,
)
CAR_STYLES = {
    # name: (cabin top, cabin/body boundary, cabin taper, height in m, width in m)
    "sedan": (0.05, 0.48, 0.16, 1.45, 1.80),
    "hatchback": (0.04, 0.46, 0.12, 1.50, 1.72),
    "suv": (0.03, 0.42, 0.08, 1.75, 1.90),
    "van": (0.02, 0.38, 0.04, 2.00, 1.95),
}
SKIN_TONES = np.array([(224, 186, 160), (198, 150, 118), (160, 110, 80), (110, 72, 50), (240, 205, 185)], np.float32)
CLOTHES = np.array(
    [(30, 30, 35), (60, 70, 110), (140, 30, 40), (200, 200, 205), (50, 90, 60), (120, 100, 80), (210, 170, 60), (90, 40, 100)],
    np.float32,
)


@dataclass(frozen=True)
class CarLook:
    colour: np.ndarray  # (3,) RGB
    style: str
    facing_camera: bool  # True: front view (oncoming), False: rear view
    texture_seed: int


@dataclass(frozen=True)
class PedestrianLook:
    skin: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    stride_phase: float
    texture_seed: int


def random_car_look(rng: np.random.Generator, facing_camera: bool) -> CarLook:
    colour = CAR_PALETTE[rng.integers(len(CAR_PALETTE))] + rng.normal(0, 2.0, 3)
    style = list(CAR_STYLES)[rng.choice(4, p=[0.45, 0.25, 0.2, 0.1])]
    return CarLook(np.clip(colour, 0, 255).astype(np.float32), style, facing_camera, int(rng.integers(1 << 30)))


def random_pedestrian_look(rng: np.random.Generator) -> PedestrianLook:
    return PedestrianLook(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        shirt=CLOTHES[rng.integers(len(CLOTHES))] + rng.normal(0, 6, 3).astype(np.float32),
        trousers=CLOTHES[rng.integers(len(CLOTHES))] * 0.8,
        stride_phase=float(rng.uniform(0, 2 * np.pi)),
        texture_seed=int(rng.integers(1 << 30)),
    )


def _box(a, b, a0, a1, b0, b1):
    return (a >= a0) & (a <= a1) & (b >= b0) & (b <= b1)


def _speckle(a, b, seed: int, scale: float = 40.0) -> np.ndarray:
    """Deterministic fine texture in [-1, 1] fixed to the sprite surface."""
    ia = np.floor(a * scale).astype(np.int64)
    ib = np.floor(b * scale).astype(np.int64)
    h = (ia * 73856093) ^ (ib * 19349663) ^ seed
    return ((h % 2048) / 1024.0 - 1.0).astype(np.float32)


def draw_car(a: np.ndarray, b: np.ndarray, look: CarLook) -> tuple[np.ndarray, np.ndarray]:
    """Covered points and RGB colours of a car seen from behind or from the front (a rigid sprite)."""
    cabin_top, cabin_bottom, taper, _, _ = CAR_STYLES[look.style]
    rgb = np.zeros(a.shape + (3,), np.float32)
    body = _box(a, b, 0.01, 0.99, cabin_bottom, 0.88)
    # Round the body's upper corners.
    corner = 0.06
    body &= ~(((a < corner) | (a > 1 - corner)) & (b < cabin_bottom + corner) & (
        ((np.minimum(a, 1 - a) - corner) ** 2 + (b - cabin_bottom - corner) ** 2) > corner**2))
    slope = taper * (cabin_bottom - b) / max(cabin_bottom - cabin_top, 1e-3)
    cabin = (b >= cabin_top) & (b < cabin_bottom) & (a >= 0.1 + slope) & (a <= 0.9 - slope)
    wheel_left = _box(a, b, 0.07, 0.27, 0.8, 1.0)
    wheel_right = _box(a, b, 0.73, 0.93, 0.8, 1.0)
    covered = body | cabin | wheel_left | wheel_right

    shade = (1.08 - 0.25 * b)[..., None]
    rgb[:] = look.colour * shade
    rgb += _speckle(a, b, look.texture_seed)[..., None] * 5.0
    window = cabin & (b > cabin_top + 0.03) & (a >= 0.14 + slope) & (a <= 0.86 - slope)
    rgb[window] = np.array([52, 62, 78], np.float32) + 30 * (1 - b[window, None])
    bumper = body & (b > 0.78)
    rgb[bumper] *= 0.55
    lamp_colour = np.array([245, 235, 200] if look.facing_camera else [200, 20, 20], np.float32)
    lamps = body & (b > cabin_bottom + 0.05) & (b < cabin_bottom + 0.16) & ((a < 0.16) | (a > 0.84))
    rgb[lamps] = lamp_colour
    plate = body & _box(a, b, 0.4, 0.6, 0.64, 0.74)
    rgb[plate] = (232, 232, 224)
    rgb[(wheel_left | wheel_right) & ~body] = (18, 18, 20)
    return covered, rgb


def draw_pedestrian(
    a: np.ndarray, b: np.ndarray, look: PedestrianLook, walk_phase: float, next_walk_phase: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered points, RGB colours, and where each point's ``a`` will be at the next walk phase.

    Arms and legs swing by shearing about the shoulder and hip; the returned ``next_a`` moves
    each limb point with its limb, so the flow of a walking pedestrian stays exact.
    """
    rgb = np.zeros(a.shape + (3,), np.float32)
    swing = 0.12 * np.sin(walk_phase + look.stride_phase)
    next_swing = 0.12 * np.sin(next_walk_phase + look.stride_phase)
    # (part mask, shear factor of a about its pivot): a point at a moves to a + factor * (next_swing - swing)
    parts = [
        (_box(a + swing * (b - 0.55) * 2, b, 0.26, 0.48, 0.55, 1.0), -(b - 0.55) * 2),  # left leg
        (_box(a - swing * (b - 0.55) * 2, b, 0.52, 0.74, 0.55, 1.0), (b - 0.55) * 2),  # right leg
        (_box(a, b, 0.22, 0.78, 0.15, 0.55), 0.0),  # torso
        (_box(a - swing * (b - 0.15), b, 0.08, 0.22, 0.16, 0.52), b - 0.15),  # left arm
        (_box(a + swing * (b - 0.15), b, 0.78, 0.92, 0.16, 0.52), -(b - 0.15)),  # right arm
        (_box(a, b, 0.44, 0.56, 0.13, 0.16) | (((a - 0.5) / 0.16) ** 2 + ((b - 0.07) / 0.07) ** 2 < 1.0), 0.0),  # neck, head
    ]
    covered = np.zeros(a.shape, bool)
    shear = np.zeros(a.shape, np.float64)
    for part, factor in parts:  # later parts are in front
        covered |= part
        shear = np.where(part, factor, shear)
    legs, torso, arms, head = parts[0][0] | parts[1][0], parts[2][0], parts[3][0] | parts[4][0], parts[5][0]
    rgb[legs] = look.trousers
    rgb[torso | arms] = look.shirt
    rgb[head] = look.skin
    rgb[head & (b < 0.035)] = (40, 30, 25)  # hair
    rgb += _speckle(a, b, look.texture_seed, 25.0)[..., None] * 6.0
    return covered, rgb, a + shear * (next_swing - swing)
