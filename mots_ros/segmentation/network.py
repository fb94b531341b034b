"""SpatialEmbedding network: a branched ERFNet (spec §2).

At ``width=1.0`` the module's state_dict keys and shapes equal the official car checkpoint
(``reference/se_car_state_dict.json`` without the ``module.`` prefix), so official weights load
strictly. ``width`` scales every channel count for lite variants; the layer structure is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3  # spec §2.1: every BatchNorm of the official model uses eps 1e-3


class DownsamplerBlock(nn.Module):
    """3×3 stride-2 conv (cout − cin channels) concatenated with a 2×2 max-pool of the input."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Conv output first, pooled input second (spec §2.1).
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1d(nn.Module):
    """Factorised residual block: (3×1, 1×3) convs twice, the second pair dilated."""

    def __init__(self, channels: int, dropprob: float, dilation: int):
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), bias=True)
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), bias=True)
        self.bn1 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.conv3x1_2 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1), bias=True)
        self.conv1x3_2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d), bias=True)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropprob)
        self.dropprob = dropprob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv3x1_1(x))
        out = F.relu(self.bn1(self.conv1x3_1(out)))
        out = F.relu(self.conv3x1_2(out))
        out = self.bn2(self.conv1x3_2(out))
        if self.dropprob != 0:
            out = self.dropout(out)
        return F.relu(out + x)


class UpsamplerBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Encoder(nn.Module):
    """ERFNet encoder: stride 8, ``c3`` channels out (spec §2.2)."""

    def __init__(self, total_outputs: int, c1: int, c2: int, c3: int):
        super().__init__()
        self.initial_block = DownsamplerBlock(3, c1)
        layers = [DownsamplerBlock(c1, c2)]
        layers += [NonBottleneck1d(c2, 0.03, 1) for _ in range(5)]
        layers.append(DownsamplerBlock(c2, c3))
        for _ in range(2):
            layers += [NonBottleneck1d(c3, 0.3, d) for d in (2, 4, 8, 16)]
        self.layers = nn.ModuleList(layers)
        # Present in the official state dict but never used in forward (spec §2.2).
        self.output_conv = nn.Conv2d(c3, total_outputs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial_block(x)
        for layer in self.layers:
            x = layer(x)
        return x


class Decoder(nn.Module):
    """ERFNet decoder back to full resolution with ``num_outputs`` channels (spec §2.3)."""

    def __init__(self, num_outputs: int, c1: int, c2: int, c3: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                UpsamplerBlock(c3, c2),
                NonBottleneck1d(c2, 0, 1),
                NonBottleneck1d(c2, 0, 1),
                UpsamplerBlock(c2, c1),
                NonBottleneck1d(c1, 0, 1),
                NonBottleneck1d(c1, 0, 1),
            ]
        )
        self.output_conv = nn.ConvTranspose2d(c1, num_outputs, 2, stride=2, padding=0, output_padding=0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.output_conv(x)


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class SpatialEmbeddingNet(nn.Module):
    """Branched ERFNet that predicts offsets, bandwidths and seeds (the official ``BranchedERFNet``).

    Args:
        num_classes: output channels per decoder. ``(4, 1)`` is the official car model: decoder 0
            gives 2 offsets and 2 sigmas, decoder 1 gives one seed logit.
        width: channel multiplier. 1.0 is the published model; 0.5 and 0.25 are lite variants
            for CPUs and small Jetsons.

    ``forward(x)`` takes ``(N, 3, H, W)`` RGB in [0, 1] with H and W divisible by 8, and returns
    the raw ``(N, sum(num_classes), H, W)`` outputs: offset-x, offset-y, sigma-x, sigma-y, seed
    logit. No activation is applied (clustering applies tanh and sigmoid).
    """

    def __init__(self, num_classes: tuple[int, ...] | list[int] = (4, 1), width: float = 1.0):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.num_classes = tuple(int(n) for n in num_classes)
        self.width = float(width)
        c1, c2, c3 = _scaled(16, width), _scaled(64, width), _scaled(128, width)
        if not 3 < c1 < c2 < c3:
            raise ValueError(f"width {width} leaves too few channels ({c1}, {c2}, {c3})")
        self.encoder = Encoder(sum(self.num_classes), c1, c2, c3)
        self.decoders = nn.ModuleList([Decoder(n, c1, c2, c3) for n in self.num_classes])

    @property
    def n_sigma(self) -> int:
        return self.num_classes[0] - 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        return torch.cat([decoder(features) for decoder in self.decoders], 1)

    def init_output(self) -> None:
        """Training-start initialisation of the offset and sigma outputs (spec §2.4)."""
        conv = self.decoders[0].output_conv
        with torch.no_grad():
            conv.weight[:, 0:2].zero_()
            conv.bias[0:2].zero_()
            conv.weight[:, 2 : 2 + self.n_sigma].zero_()
            conv.bias[2 : 2 + self.n_sigma].fill_(1.0)


def infer_width(state_dict: dict) -> float:
    """The width multiplier of a SpatialEmbeddingNet state dict (prefix-free keys)."""
    channels = state_dict["encoder.initial_block.bn.weight"].shape[0]
    return channels / 16.0


def infer_num_classes(state_dict: dict) -> tuple[int, ...]:
    """The per-decoder output channels of a SpatialEmbeddingNet state dict (prefix-free keys)."""
    counts = []
    index = 0
    while f"decoders.{index}.output_conv.bias" in state_dict:
        counts.append(int(state_dict[f"decoders.{index}.output_conv.bias"].shape[0]))
        index += 1
    return tuple(counts)
