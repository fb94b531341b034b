"""PointTrack embedding network (spec §6, the official ``TrackerOffsetEmb``).

The module's state_dict keys and shapes, in registration order, equal the official car checkpoint
(``reference/pointtrack_car_state_dict.json`` without ``module.``). All convolutions are kernel-1
Conv1d, i.e. MLPs shared across points, so the network accepts any number of points; the published
split is 1000 foreground then 500 environment points per instance.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Published point budget per instance (spec §5).
NUM_FOREGROUND_POINTS = 1000
NUM_ENVIRONMENT_POINTS = 500
EMBEDDING_DIM = 32


def location_encoding(boxes: torch.Tensor) -> torch.Tensor:
    """Sinusoidal 64-d encoding of normalised boxes (spec §6.1).

    Args:
        boxes: ``(K, 4)`` boxes ``[x0/1242, y0/375, x1/1242, y1/375]``.

    Returns:
        ``(K, 64)``: 32 sines then 32 cosines; within each half, 8 frequencies for cx, then cy,
        w, h. The published code adds 1 to the *normalised* width and height; kept on purpose.
    """
    x0, y0, x1, y1 = boxes.unbind(1)
    values = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) + 1, (y1 - y0) + 1], 1)
    frequencies = 1000.0 ** (-torch.arange(8, dtype=boxes.dtype, device=boxes.device) / 8)
    angles = (100.0 * values)[:, :, None] * frequencies[None, None, :]
    angles = angles.reshape(boxes.shape[0], 32)
    return torch.cat([torch.sin(angles), torch.cos(angles)], 1)


def _conv(cin: int, cout: int) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, 1)


class EnvironmentBranch(nn.Module):
    """Environment-point features, no BatchNorm (official ``PointFeatFuse3P``, spec §6.3)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = _conv(2, 64), _conv(64, 128), _conv(128, 128)
        self.e_conv1, self.e_conv2, self.e_conv3 = _conv(3, 64), _conv(64, 128), _conv(128, 256)
        self.t_conv1, self.t_conv2, self.t_conv3 = _conv(3, 64), _conv(64, 128), _conv(128, 128)
        self.conv4, self.conv5, self.conv6 = _conv(512, 256), _conv(256, 512), _conv(512, 256)

    def forward(self, offsets: torch.Tensor, colours: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv3(F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(offsets))))))
        e = F.leaky_relu(self.e_conv3(F.leaky_relu(self.e_conv2(F.leaky_relu(self.e_conv1(colours))))))
        t = F.leaky_relu(self.t_conv3(F.leaky_relu(self.t_conv2(F.leaky_relu(self.t_conv1(categories))))))
        features = torch.cat([x, e, t], 1)
        features = F.leaky_relu(self.conv4(features))
        features = F.leaky_relu(self.conv5(features))
        features = F.leaky_relu(self.conv6(features))
        return torch.amax(features, 2)  # (K, 256)


class PartModule(nn.Module):
    """FineTrack-style part embeddings: K soft-attention heads over the foreground points' features.

    Each head weights the foreground points (softmax over points) and pools their 512-d features
    into one part, which a projection shared by all heads maps to a part embedding. Heads learn
    their parts without labels; the diversity loss (:func:`mots_ros.training.losses.part_diversity_loss`)
    keeps their attention maps apart.
    """

    def __init__(self, parts: int, in_channels: int = 512, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        self.attention = nn.Conv1d(in_channels, parts, 1)
        self.project = nn.Sequential(nn.Linear(in_channels, 256), nn.LeakyReLU(), nn.Linear(256, embedding_dim))

    def forward(self, point_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(K, P, dim)`` part embeddings and ``(K, P, N)`` attention maps of ``(K, C, N)`` features."""
        attention = torch.softmax(self.attention(point_features), dim=2)
        pooled = torch.bmm(attention, point_features.transpose(1, 2))  # (K, P, C)
        return self.project(pooled), attention


def resample_points(features: torch.Tensor, positions: torch.Tensor, queries: torch.Tensor,
                    neighbours: int = 3) -> torch.Tensor:
    """Features read at query positions by inverse-squared-distance weights over the nearest points.

    The point-cloud counterpart of bilinear sampling (PointNet++'s feature propagation):
    ``features (K, C, N)`` live at ``positions (K, 2, N)``; returns ``(K, C, M)`` at ``queries (K, 2, M)``.
    Differentiable in the queries, so a predicted displacement can learn where to read.
    """
    count, channels, _ = features.shape
    # Squared distances by expansion: an (K, M, N, 2) difference tensor would not fit a training batch.
    squared = (queries.pow(2).sum(1)[:, :, None] + positions.pow(2).sum(1)[:, None, :]
               - 2 * torch.bmm(queries.transpose(1, 2), positions)).clamp_min(0)
    nearest, index = torch.topk(squared, neighbours, dim=2, largest=False)  # (K, M, k)
    weights = 1.0 / (nearest + 1e-6)
    weights = weights / weights.sum(2, keepdim=True)
    gathered = torch.gather(features, 2, index.reshape(count, 1, -1).expand(count, channels, -1))
    gathered = gathered.reshape(count, channels, index.shape[1], neighbours)
    return torch.sum(gathered * weights[:, None], 3)


class AlignedScales(nn.Module):
    """FineTrack's flow-aligned FPN carried over to the foreground branch's PointNet layers.

    The three depths of point features (offset + colour branches after layers 1, 2 and 3: 128, 256
    and 512 channels) are projected to one width and merged top-down, as in an FPN. Before each
    merge a kernel-1 layer predicts, from both levels, a 2-d displacement per point in offset units
    (FineTrack's "semantic flow"), and the deeper level is read at the displaced positions
    (:func:`resample_points`). The displacement layers start at zero, so training starts from a
    plain per-point FPN. The parts attend over the result; the global embedding never sees it.
    With ``flow=False`` the levels are merged point by point without any displacement: the
    same fusion without alignment, for ablations.
    """

    def __init__(self, channels: tuple[int, ...] = (128, 256, 512), out_channels: int = 256, flow: bool = True):
        super().__init__()
        self.out_channels = out_channels
        self.lateral = nn.ModuleList(_conv(c, out_channels) for c in channels)
        self.flow = nn.ModuleList(_conv(2 * out_channels, 2) for _ in channels[:-1]) if flow else None
        for layer in self.flow or []:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, levels: list[torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
        """``(K, out_channels, N)`` of the shallow-to-deep ``levels`` at ``positions (K, 2, N)``."""
        merged = self.lateral[-1](levels[-1])
        for depth in reversed(range(len(levels) - 1)):
            shallow = self.lateral[depth](levels[depth])
            if self.flow is None:
                merged = shallow + merged
                continue
            displacement = self.flow[depth](torch.cat([shallow, merged], 1))
            merged = shallow + resample_points(merged, positions, positions + displacement)
        return F.leaky_relu(merged)


class PointFeatureNet(nn.Module):
    """Foreground branch, environment branch and fusion head (official ``PoseNetFeatOffsetEmb``).

    With ``parts`` > 0 a :class:`PartModule` is added after the published layers (their keys and
    outputs unchanged); with ``aligned_scales`` too, the parts attend over :class:`AlignedScales`
    instead of the last point features.
    """

    def __init__(self, embedding_dim: int = EMBEDDING_DIM, parts: int = 0, aligned_scales: bool = False,
                 scale_flow: bool = True):
        super().__init__()
        # Registration order matters only for readability of state dicts; it follows the official one.
        self.borderConv = EnvironmentBranch()
        self.conv1, self.conv2, self.conv3 = _conv(2, 64), _conv(64, 128), _conv(128, 256)
        self.conv1_bn, self.conv2_bn, self.conv3_bn = nn.BatchNorm1d(64), nn.BatchNorm1d(128), nn.BatchNorm1d(256)
        self.e_conv1, self.e_conv2, self.e_conv3 = _conv(3, 64), _conv(64, 128), _conv(128, 256)
        self.e_conv1_bn, self.e_conv2_bn, self.e_conv3_bn = nn.BatchNorm1d(64), nn.BatchNorm1d(128), nn.BatchNorm1d(256)
        self.conv4, self.conv5, self.conv6 = _conv(512, 256), _conv(256, 512), _conv(512, 64)
        self.conv4_bn, self.conv5_bn = nn.BatchNorm1d(256), nn.BatchNorm1d(512)
        self.conv7, self.conv8, self.conv9 = _conv(512, 256), _conv(256, 512), _conv(512, 64)
        self.conv7_bn, self.conv8_bn = nn.BatchNorm1d(256), nn.BatchNorm1d(512)
        self.conv_weight = _conv(128, 1)
        self.last_emb = nn.Sequential(nn.Linear(960, 256), nn.LeakyReLU(), nn.Linear(256, embedding_dim))
        if aligned_scales and parts <= 0:
            raise ValueError("aligned_scales feeds the part heads, so it needs parts > 0")
        self.aligned_scales = AlignedScales(flow=scale_flow) if aligned_scales else None
        part_channels = self.aligned_scales.out_channels if self.aligned_scales is not None else 512
        self.parts = PartModule(parts, part_channels, embedding_dim) if parts > 0 else None

    def forward(self, foreground: torch.Tensor, environment: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``(K, dim)`` embeddings (with parts: ``(K, dim · (1 + P))``, the global one first)."""
        embedding, parts, _ = self.forward_parts(foreground, environment, boxes)
        if parts is None:
            return embedding
        return torch.cat([embedding, parts.reshape(parts.shape[0], -1)], 1)

    def forward_parts(self, foreground: torch.Tensor, environment: torch.Tensor,
                      boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(global (K, dim), parts (K, P, dim) or None, attention (K, P, Nf) or None)``."""
        # foreground: (K, 5, Nf) = colours 0-2, offsets 3-4; environment: (K, 8, Ne).
        colours, offsets = foreground[:, 0:3], foreground[:, 3:5]
        x1 = F.leaky_relu(self.conv1_bn(self.conv1(offsets)))
        x2 = F.leaky_relu(self.conv2_bn(self.conv2(x1)))
        x = F.leaky_relu(self.conv3_bn(self.conv3(x2)))
        e1 = F.leaky_relu(self.e_conv1_bn(self.e_conv1(colours)))
        e2 = F.leaky_relu(self.e_conv2_bn(self.e_conv2(e1)))
        e = F.leaky_relu(self.e_conv3_bn(self.e_conv3(e2)))
        point_features = torch.cat([x, e], 1)  # (K, 512, Nf): offset features first

        branch_a = F.leaky_relu(self.conv4_bn(self.conv4(point_features)))
        branch_a = F.leaky_relu(self.conv5_bn(self.conv5(branch_a)))
        branch_a = F.leaky_relu(self.conv6(branch_a))
        branch_b = F.leaky_relu(self.conv7_bn(self.conv7(point_features)))
        branch_b = F.leaky_relu(self.conv8_bn(self.conv8(branch_b)))
        branch_b = F.leaky_relu(self.conv9(branch_b))

        attention = torch.softmax(self.conv_weight(torch.cat([branch_a, branch_b], 1)), dim=2)  # (K, 1, Nf)
        pooled_average = torch.mean(branch_a, 2)
        pooled_max = torch.amax(branch_b, 2)
        attended = torch.sum(point_features * attention, 2)  # (K, 512)

        env = self.borderConv(environment[:, 3:5], environment[:, 0:3], environment[:, 5:8])
        fused = torch.cat([pooled_average, pooled_max, attended, env, location_encoding(boxes)], 1)  # (K, 960)
        if self.parts is None:
            return self.last_emb(fused), None, None
        part_input = point_features
        if self.aligned_scales is not None:
            levels = [torch.cat([x1, e1], 1), torch.cat([x2, e2], 1), point_features]
            part_input = self.aligned_scales(levels, offsets)
        parts, attention = self.parts(part_input)
        return self.last_emb(fused), parts, attention


class PointTrackNet(nn.Module):
    """PointTrack instance embedding: point clouds and boxes to appearance vectors.

    Args:
        num_foreground_points: how many leading points of each cloud are foreground (1000 published).
        parts: FineTrack part embeddings (:class:`PartModule`); 0 = the published network exactly.
        aligned_scales: the parts attend over flow-aligned multi-depth features (:class:`AlignedScales`).
        scale_flow: with ``aligned_scales``, False merges the depths without the learned displacement.

    ``forward(points, boxes)``:
        points: ``(K, Nf + Ne, 8) float32`` clouds from :func:`mots_ros.embedding.sample_points`:
            foreground rows ``[B, G, R, dv, du, 0, 0, 0]`` then environment rows
            ``[B, G, R, dv, du, e0, e1, e2]``.
        boxes: ``(K, 4)`` normalised boxes (see :func:`location_encoding`).
        returns: ``(K, 32)`` raw (unnormalised) embeddings; association uses Euclidean distance.
            With parts: ``(K, 32 · (1 + P))``, the global embedding then each part's.
    """

    def __init__(self, num_foreground_points: int = NUM_FOREGROUND_POINTS, parts: int = 0,
                 aligned_scales: bool = False, scale_flow: bool = True):
        super().__init__()
        self.num_foreground_points = int(num_foreground_points)
        self.point_feat = PointFeatureNet(parts=parts, aligned_scales=aligned_scales, scale_flow=scale_flow)

    @property
    def parts(self) -> int:
        """The number of part embeddings (0: the published network)."""
        module = self.point_feat.parts
        return 0 if module is None else int(module.attention.out_channels)

    @property
    def aligned_scales(self) -> bool:
        """Whether the parts attend over flow-aligned multi-depth features."""
        return self.point_feat.aligned_scales is not None

    def _split(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        split = self.num_foreground_points
        return points[:, :split, :5].transpose(1, 2), points[:, split:, :].transpose(1, 2)

    def forward(self, points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        foreground, environment = self._split(points)
        return self.point_feat(foreground, environment, boxes)

    def forward_parts(self, points: torch.Tensor,
                      boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Global embeddings, part embeddings and the parts' attention maps (training)."""
        foreground, environment = self._split(points)
        return self.point_feat.forward_parts(foreground, environment, boxes)


def parts_in_state_dict(state_dict: dict) -> int:
    """How many part heads a PointTrackNet state dict has (0 for the published network)."""
    for key, value in state_dict.items():
        if key.removeprefix("module.").endswith("point_feat.parts.attention.weight"):
            return int(value.shape[0])
    return 0


def network_options_in_state_dict(state_dict: dict) -> dict:
    """The ``PointTrackNet`` keyword arguments that rebuild the network of a state dict."""
    aligned = any(".aligned_scales." in key for key in state_dict)
    options = {"parts": parts_in_state_dict(state_dict), "aligned_scales": aligned}
    if aligned:
        options["scale_flow"] = any(".aligned_scales.flow." in key for key in state_dict)
    return options
