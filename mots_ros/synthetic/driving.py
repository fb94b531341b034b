"""Deterministic synthetic driving sequences with exact masks and optical flow.

The world is a straight street: a four-lane road (y = 0 plane), sidewalks, building facades at
x = ±10 m and a sky. The camera is KITTI's (721.5 px focal length at 1242×375, 1.65 m above the
road) on an ego car that drives forward with a gentle lateral sway. The background is ray-cast
per pixel; cars and pedestrians are fronto-parallel sprites standing on the road, drawn far to near
so that nearer objects occlude farther ones.

Ground truth per frame:

- ``instance_map``: KITTI MOTS values ``class_id * 1000 + n`` (1 car, 2 pedestrian); objects
  farther than ``ignore_distance`` or with fewer than ``min_visible_pixels`` visible pixels
  become ignore regions (10000), as small or distant objects are in KITTI MOTS;
- ``flow_to_next``: exact forward flow (dx, dy) in pixels from this frame to the next, indexed by
  this frame's pixels; every visible point is projected again with the next frame's camera and
  object poses. The flow of frame t-1 is published with frame t ("previous to current").

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed and settings give the
same sequence (the frame count is a setting: it sets how much street is built).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mots_ros.datatypes import IGNORE_TRACK_ID
from mots_ros.synthetic.sprites import (
    CAR_STYLES,
    CarLook,
    PedestrianLook,
    draw_car,
    draw_pedestrian,
    random_car_look,
    random_pedestrian_look,
)

CAMERA_HEIGHT_M = 1.65
KITTI_FOCAL_PX, KITTI_WIDTH = 721.5377, 1242
FACADE_X_M = 10.0
SIDEWALK_X_M = 7.0
NEAR_PLANE_M = 2.0


@dataclass(frozen=True)
class DrivingConfig:
    """Scene parameters. ``height``/``width`` default to KITTI's image size."""

    height: int = 375
    width: int = 1242
    frames: int = 100
    fps: float = 10.0
    seed: int = 0
    cars: int = 14  # vehicles kept alive around the ego car
    pedestrians: int = 7
    ego_speed_mps: float = 9.0
    ignore_distance_m: float = 45.0
    min_visible_pixels: int = 150
    sensor_noise: float = 2.0


@dataclass
class Agent:
    """A car or pedestrian moving at constant velocity from (x0, z0) at time t0."""

    agent_id: int
    class_id: int
    x0: float
    z0: float
    t0: float
    vx: float
    vz: float
    width_m: float
    height_m: float
    look: CarLook | PedestrianLook

    def position(self, t: float) -> tuple[float, float]:
        return self.x0 + self.vx * (t - self.t0), self.z0 + self.vz * (t - self.t0)

    @property
    def gt_id(self) -> int:
        return self.class_id * 1000 + self.agent_id


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at (x, CAMERA_HEIGHT_M, z) with heading ``yaw`` (radians, left-handed about +y)."""

    x: float
    z: float
    yaw: float
    focal: float
    cx: float
    cy: float

    @property
    def forward(self) -> np.ndarray:
        return np.array([np.sin(self.yaw), 0.0, np.cos(self.yaw)])

    @property
    def right(self) -> np.ndarray:
        return np.array([np.cos(self.yaw), 0.0, -np.sin(self.yaw)])

    def to_camera(self, x, y, z):
        """World points to camera coordinates (right, up, forward)."""
        dx, dz = x - self.x, z - self.z
        right, forward = self.right, self.forward
        return dx * right[0] + dz * right[2], y - CAMERA_HEIGHT_M, dx * forward[0] + dz * forward[2]

    def project(self, x, y, z):
        """World points to pixel coordinates (u, v) and depth."""
        xc, yc, zc = self.to_camera(x, y, z)
        safe = np.maximum(zc, 1e-6)
        return self.cx + self.focal * xc / safe, self.cy - self.focal * yc / safe, zc


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame and its ground truth."""

    frame_index: int
    image_rgb: np.ndarray  # (H, W, 3) uint8
    instance_map: np.ndarray  # (H, W) int32, KITTI MOTS values
    flow_to_next: np.ndarray  # (H, W, 2) float32, this frame -> next frame
    stamp_ns: int


@dataclass
class _Buildings:
    """Facade segments along z for one side of the street."""

    starts: np.ndarray
    heights: np.ndarray
    colours: np.ndarray
    window_period: np.ndarray


class DrivingScene:
    """Renders a sequence frame by frame; iterate over :meth:`frames`."""

    def __init__(self, config: DrivingConfig = DrivingConfig()):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        scale = config.width / KITTI_WIDTH
        self.focal = KITTI_FOCAL_PX * scale
        self.cx, self.cy = 609.5593 * scale, 172.8540 * config.height / 375.0
        self.sway_phase = float(self.rng.uniform(0, 2 * np.pi))
        self.noise_table = self._noise_table(self.rng)
        route_length = config.ego_speed_mps * config.frames / config.fps + 300.0
        self.buildings = [self._buildings(route_length) for _ in range(2)]
        self.agents: list[Agent] = []
        self._next_id = {1: 1, 2: 1}
        rows, cols = np.mgrid[0 : config.height, 0 : config.width]
        self._pixel_u = cols.astype(np.float64) + 0.5
        self._pixel_v = rows.astype(np.float64) + 0.5
        for _ in range(config.cars):
            self._spawn_car(0.0, initial=True)
        for _ in range(config.pedestrians):
            self._spawn_pedestrian(0.0, initial=True)

    # ----------------------------------------------------------------------------- world
    def camera(self, t: float) -> Camera:
        """Ego camera at time t: forward at constant speed, swaying ±0.35 m across its lane."""
        speed = self.config.ego_speed_mps
        x = 1.75 + 0.35 * np.sin(0.4 * t + self.sway_phase)
        yaw = np.arctan2(0.35 * 0.4 * np.cos(0.4 * t + self.sway_phase), speed)
        return Camera(float(x), speed * t, float(yaw), self.focal, self.cx, self.cy)

    @staticmethod
    def _noise_table(rng: np.random.Generator) -> np.ndarray:
        table = np.zeros((256, 256), np.float32)
        for octave, weight in ((8, 0.5), (32, 0.3), (128, 0.2)):
            coarse = rng.uniform(-1, 1, (octave, octave)).astype(np.float32)
            reps = 256 // octave
            table += weight * np.kron(coarse, np.ones((reps, reps), np.float32))
        return table

    def _noise(self, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
        i = np.floor(x * scale).astype(np.int64) & 255
        j = np.floor(y * scale).astype(np.int64) & 255
        return self.noise_table[i, j]

    def _buildings(self, length: float) -> _Buildings:
        starts, heights, colours, periods = [], [], [], []
        z = -50.0
        palette = np.array([(150, 120, 100), (180, 170, 150), (120, 110, 115), (200, 190, 170), (140, 90, 70), (95, 100, 110)], np.float32)
        while z < length:
            starts.append(z)
            heights.append(self.rng.uniform(7, 22))
            colours.append(palette[self.rng.integers(len(palette))] + self.rng.normal(0, 8, 3))
            periods.append(self.rng.uniform(2.6, 3.6))
            z += self.rng.uniform(8, 25)
        return _Buildings(np.array(starts), np.array(heights), np.array(colours, np.float32), np.array(periods))

    def _spawn_car(self, t: float, initial: bool = False) -> None:
        rng, cfg = self.rng, self.config
        ego_z = cfg.ego_speed_mps * t
        kind = rng.choice(["same", "oncoming", "parked"], p=[0.35, 0.35, 0.3])
        if kind == "same":
            lane_x = rng.choice([1.75, 5.25])
            vz = cfg.ego_speed_mps + rng.uniform(-2.5, 2.5)
            facing = False
        elif kind == "oncoming":
            lane_x = rng.choice([-1.75, -5.25])
            vz = -rng.uniform(7, 12)
            facing = True
        else:
            lane_x = rng.choice([-1, 1]) * rng.uniform(6.0, 6.6)
            vz = 0.0
            facing = bool(rng.random() < 0.5)
        ahead = rng.uniform(8, 75) if initial else rng.uniform(60, 90)
        if kind == "same" and not initial and vz > cfg.ego_speed_mps and rng.random() < 0.5:
            ahead = -rng.uniform(5, 15)  # a faster car coming from behind will overtake
        if lane_x == 1.75 and ahead < 12:
            ahead = 12 + rng.uniform(0, 10)  # keep the ego lane clear in front of the camera
        look = random_car_look(rng, facing)
        _, _, _, height_m, width_m = CAR_STYLES[look.style]
        self.agents.append(
            Agent(self._take_id(1), 1, float(lane_x + rng.uniform(-0.3, 0.3)), float(ego_z + ahead), t, 0.0, float(vz),
                  width_m * rng.uniform(0.95, 1.05), height_m * rng.uniform(0.95, 1.05), look)
        )

    def _spawn_pedestrian(self, t: float, initial: bool = False) -> None:
        rng, cfg = self.rng, self.config
        ego_z = cfg.ego_speed_mps * t
        side = rng.choice([-1.0, 1.0])
        ahead = rng.uniform(6, 50) if initial else rng.uniform(40, 70)
        crossing = rng.random() < 0.15
        x = side * (rng.uniform(7.3, 9.6) if not crossing else rng.uniform(7.0, 9.0))
        vx = -side * rng.uniform(1.0, 1.6) if crossing else 0.0
        vz = 0.0 if crossing else rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.7)
        height_m = rng.uniform(1.55, 1.9)
        self.agents.append(
            Agent(self._take_id(2), 2, float(x), float(ego_z + ahead), t, float(vx), float(vz), height_m * 0.34, height_m,
                  random_pedestrian_look(rng))
        )

    def _take_id(self, class_id: int) -> int:
        agent_id = self._next_id[class_id]
        self._next_id[class_id] += 1
        return agent_id

    def _update_population(self, t: float) -> None:
        camera = self.camera(t)
        alive = []
        for agent in self.agents:
            x, z = agent.position(t)
            _, _, depth = camera.to_camera(x, 0.0, z)
            if -25.0 < depth < 130.0 and abs(x) < 14.0:
                alive.append(agent)
        self.agents = alive
        while sum(a.class_id == 1 for a in self.agents) < self.config.cars:
            self._spawn_car(t)
        while sum(a.class_id == 2 for a in self.agents) < self.config.pedestrians:
            self._spawn_pedestrian(t)

    # ----------------------------------------------------------------------------- rendering
    def frames(self) -> Iterator[SyntheticFrame]:
        dt = 1.0 / self.config.fps
        for index in range(self.config.frames):
            t = index * dt
            if index > 0:
                self._update_population(t)
            yield self.render(index, t, t + dt)

    def render(self, index: int, t: float, t_next: float) -> SyntheticFrame:
        cfg = self.config
        camera, camera_next = self.camera(t), self.camera(t_next)
        rgb, flow = self._background(camera, camera_next)
        instance_map = np.zeros((cfg.height, cfg.width), np.int32)
        distant: set[int] = set()

        placed = []
        for agent in self.agents:
            x, z = agent.position(t)
            _, _, depth = camera.to_camera(x, 0.0, z)
            if depth > NEAR_PLANE_M:
                placed.append((depth, agent))
        for depth, agent in sorted(placed, key=lambda item: -item[0]):  # far to near
            if self._draw_agent(agent, t, t_next, camera, camera_next, rgb, flow, instance_map) and depth > cfg.ignore_distance_m:
                distant.add(agent.gt_id)

        ids, counts = np.unique(instance_map, return_counts=True)
        for gt_id, count in zip(ids, counts):
            if gt_id and (gt_id in distant or count < cfg.min_visible_pixels):
                instance_map[instance_map == gt_id] = IGNORE_TRACK_ID
        noise = self.rng.normal(0, cfg.sensor_noise, rgb.shape) if cfg.sensor_noise > 0 else 0.0
        image = np.clip(rgb + noise, 0, 255).astype(np.uint8)
        return SyntheticFrame(index, image, instance_map, flow.astype(np.float32), int(round(t * 1e9)))

    def _background(self, camera: Camera, camera_next: Camera) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel ray casting of road, sidewalks, facades and sky; colours and forward flow."""
        u, v = self._pixel_u, self._pixel_v
        dx_c = (u - camera.cx) / camera.focal
        dy_c = -(v - camera.cy) / camera.focal
        right, forward = camera.right, camera.forward
        dir_x = dx_c * right[0] + forward[0]
        dir_y = dy_c
        dir_z = dx_c * right[2] + forward[2]

        big = 1e9
        t_ground = np.where(dir_y < -1e-9, CAMERA_HEIGHT_M / np.maximum(-dir_y, 1e-12), big)
        facade_x = np.where(dir_x > 0, FACADE_X_M, -FACADE_X_M)
        t_facade = np.where(np.abs(dir_x) > 1e-9, (facade_x - camera.x) / np.where(np.abs(dir_x) > 1e-9, dir_x, 1.0), big)
        t_facade = np.where(t_facade > 0, t_facade, big)
        hit_facade = t_facade < t_ground
        t_hit = np.where(hit_facade, t_facade, t_ground)
        px = camera.x + t_hit * dir_x
        py = CAMERA_HEIGHT_M + t_hit * dir_y
        pz = camera.z + t_hit * dir_z

        side = (px > 0).astype(np.int64)
        facade_height = np.zeros_like(px)
        facade_colour = np.zeros(px.shape + (3,), np.float32)
        window_period = np.ones_like(px)
        for s, buildings in enumerate(self.buildings):
            on_side = hit_facade & (side == s)
            segment = np.clip(np.searchsorted(buildings.starts, pz[on_side], side="right") - 1, 0, len(buildings.starts) - 1)
            facade_height[on_side] = buildings.heights[segment]
            facade_colour[on_side] = buildings.colours[segment]
            window_period[on_side] = buildings.window_period[segment]
        is_facade = hit_facade & (py <= facade_height)
        is_ground = ~hit_facade & (t_ground < big)
        is_sky = ~(is_facade | is_ground)

        rgb = np.zeros(u.shape + (3,), np.float32)
        # Road and sidewalks: textures fixed to the ground, so they move with the ego motion.
        texture = self._noise(px * 4.0, pz * 4.0, 1.0) + 0.5 * self._noise(px * 23.0, pz * 23.0, 1.0)
        road = is_ground & (np.abs(px) < SIDEWALK_X_M)
        rgb[road] = (np.array([78, 78, 82], np.float32) + 14 * texture[road, None])
        marks = road & (
            (np.abs(px) < 0.12)
            | ((np.abs(np.abs(px) - 3.5) < 0.08) & (np.mod(pz, 10.0) < 4.0))
            | (np.abs(np.abs(px) - 6.85) < 0.1)
        )
        rgb[marks] = (214, 214, 205)
        sidewalk = is_ground & ~road
        tiles = (np.mod(pz, 1.2) < 0.05) | (np.mod(px, 1.2) < 0.05)
        rgb[sidewalk] = np.array([150, 146, 138], np.float32) + 10 * texture[sidewalk, None]
        rgb[sidewalk & tiles] *= 0.85
        # Facades with a grid of windows.
        facade_texture = self._noise(pz * 3.0, py * 3.0, 1.0)
        rgb[is_facade] = facade_colour[is_facade] + 12 * facade_texture[is_facade, None]
        period = window_period
        windows = is_facade & (np.mod(pz, period) > 0.3 * period) & (np.mod(pz, period) < 0.75 * period)
        windows &= (np.mod(py, 3.2) > 1.0) & (np.mod(py, 3.2) < 2.5) & (py > 0.8)
        rgb[windows] = np.array([58, 68, 84], np.float32) + 20 * facade_texture[windows, None]
        # Sky: a gradient with clouds fixed to directions (at infinity).
        elevation = np.arctan2(dir_y, np.hypot(dir_x, dir_z))
        azimuth = np.arctan2(dir_x, dir_z)
        clouds = np.clip(self._noise(azimuth * 60.0, elevation * 120.0, 1.0), 0, 1)
        sky_colour = np.stack([150 - 60 * elevation, 185 - 50 * elevation, 235 - 20 * elevation], -1).astype(np.float32)
        rgb[is_sky] = sky_colour[is_sky] * (1 - clouds[is_sky, None]) + 240 * clouds[is_sky, None]
        # Haze: distant surfaces fade towards the horizon colour.
        haze = 1.0 - np.exp(-np.where(is_sky, 0.0, t_hit) / 220.0)
        rgb = rgb * (1 - haze[..., None]) + np.array([190, 200, 215], np.float32) * haze[..., None]

        # Forward flow: project the same surface point (or sky direction) with the next camera.
        next_u, next_v, _ = camera_next.project(px, py, pz)
        sky_u, sky_v = self._project_direction(camera_next, dir_x, dir_y, dir_z)
        next_u = np.where(is_sky, sky_u, next_u)
        next_v = np.where(is_sky, sky_v, next_v)
        flow = np.stack([next_u - u, next_v - v], -1)
        return rgb, flow

    @staticmethod
    def _project_direction(camera: Camera, dir_x, dir_y, dir_z):
        right, forward = camera.right, camera.forward
        xc = dir_x * right[0] + dir_z * right[2]
        zc = np.maximum(dir_x * forward[0] + dir_z * forward[2], 1e-6)
        return camera.cx + camera.focal * xc / zc, camera.cy - camera.focal * dir_y / zc

    def _sprite_box(self, agent: Agent, t: float, camera: Camera) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) pixel edges of the agent's billboard at time t."""
        x, z = agent.position(t)
        xc, _, zc = camera.to_camera(x, 0.0, z)
        zc = max(zc, 0.5)
        u = camera.cx + camera.focal * xc / zc
        half = camera.focal * agent.width_m / 2 / zc
        bottom = camera.cy + camera.focal * CAMERA_HEIGHT_M / zc
        top = camera.cy - camera.focal * (agent.height_m - CAMERA_HEIGHT_M) / zc
        return u - half, top, u + half, bottom

    def _draw_agent(self, agent, t, t_next, camera, camera_next, rgb, flow, instance_map) -> bool:
        height, width = instance_map.shape
        left, top, right, bottom = self._sprite_box(agent, t, camera)
        c0, c1 = max(0, int(np.floor(left))), min(width, int(np.ceil(right)))
        r0, r1 = max(0, int(np.floor(top))), min(height, int(np.ceil(bottom)))
        if c0 >= c1 or r0 >= r1:
            return False
        u = np.arange(c0, c1) + 0.5
        v = np.arange(r0, r1) + 0.5
        a = ((u - left) / (right - left))[None, :].repeat(r1 - r0, 0)
        b = ((v - top) / (bottom - top))[:, None].repeat(c1 - c0, 1)
        if agent.class_id == 1:
            covered, colour = draw_car(a, b, agent.look)
            next_a = a
        else:
            cadence = 2 * np.pi * 0.9 if (agent.vz or agent.vx) else 0.0  # steps per second, walking only
            covered, colour, next_a = draw_pedestrian(a, b, agent.look, cadence * t, cadence * t_next)
        covered &= (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        if not covered.any():
            return False
        next_left, next_top, next_right, next_bottom = self._sprite_box(agent, t_next, camera_next)
        region = (slice(r0, r1), slice(c0, c1))
        rgb[region][covered] = colour[covered]
        instance_map[region][covered] = agent.gt_id
        next_u = next_left + next_a * (next_right - next_left)
        next_v = next_top + b * (next_bottom - next_top)
        flow[region][covered, 0] = (next_u - u[None, :])[covered]
        flow[region][covered, 1] = (next_v - v[:, None])[covered]
        return True


def write_sequence(
    root: str | os.PathLike, name: str, config: DrivingConfig, *, write_flow: bool = False, progress: bool = False
) -> Path:
    """Renders a sequence into a KITTI MOTS folder.

    Writes ``images/<name>/NNNNNN.png``, ``instances/<name>/NNNNNN.png`` (16-bit),
    ``instances_txt/<name>.txt`` and, with ``write_flow``, ``flow/<name>/NNNNNN.npy`` where
    frame t holds the ``(H, W, 2) float32`` flow from frame t-1 to t (frame 0 has none).
    """
    import cv2

    from mots_ros.datasets import records_from_instance_map, write_instance_png, write_mots_txt

    root = Path(root)
    for folder in ("images", "instances") + (("flow",) if write_flow else ()):
        (root / folder / name).mkdir(parents=True, exist_ok=True)
    records = []
    previous_flow = None
    frames = DrivingScene(config).frames()
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=config.frames, unit="frame", desc=f"synth {name}")
    for frame in frames:
        index = frame.frame_index
        cv2.imwrite(str(root / "images" / name / f"{index:06d}.png"), frame.image_rgb[..., ::-1])
        write_instance_png(root / "instances" / name / f"{index:06d}.png", frame.instance_map)
        records.extend(records_from_instance_map(index, frame.instance_map))
        if write_flow and previous_flow is not None:
            np.save(root / "flow" / name / f"{index:06d}.npy", previous_flow)
        previous_flow = frame.flow_to_next
    write_mots_txt(root / "instances_txt" / f"{name}.txt", records)
    return root
