"""Training losses: SpatialEmbedding's instance loss (spec §4.1) and the triplet loss (spec §8.3)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mots_ros.segmentation.clustering import X_STEP, Y_STEP


def lovasz_grad(sorted_labels: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman et al.)."""
    total = sorted_labels.sum()
    intersection = total - sorted_labels.cumsum(0)
    union = total + (1.0 - sorted_labels).cumsum(0)
    jaccard = 1.0 - intersection / union
    if sorted_labels.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary Lovász hinge of one image: flat ``logits`` in R and ``labels`` in {0, 1}."""
    logits, labels = logits.reshape(-1), labels.reshape(-1).float()
    if logits.numel() == 0:
        return logits.sum() * 0.0
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    sorted_errors, order = torch.sort(errors, descending=True)
    return torch.dot(F.relu(sorted_errors), lovasz_grad(labels[order]))


def pixel_grid(height: int, width: int, device=None) -> torch.Tensor:
    """``(2, H, W)`` published coordinate grid as a tensor (x = j·2/2047, y = i/1023)."""
    x = torch.arange(width, dtype=torch.float64, device=device) * X_STEP
    y = torch.arange(height, dtype=torch.float64, device=device) * Y_STEP
    return torch.stack([x[None, :].expand(height, width), y[:, None].expand(height, width)]).float()


def spatial_embedding_loss(
    raw: torch.Tensor,
    instances: torch.Tensor,
    *,
    n_sigma: int = 2,
    foreground_weight: float = 10.0,
    w_inst: float = 1.0,
    w_var: float = 10.0,
    w_seed: float = 1.0,
) -> torch.Tensor:
    """SpatialEmbedding loss for a batch (spec §4.1), averaged over images.

    Args:
        raw: ``(N, 2 + n_sigma + 1, H, W)`` network outputs.
        instances: ``(N, H, W)`` integer maps; 0 = background (pedestrians, ignore regions and
            anything else count as background, as in the published car training), >0 = instance,
            -1 = don't care: such pixels are left out of every term (no seed target, no side in
            any instance's Lovász hinge).
        foreground_weight: 10 in stage 1, 200 in stage 2 (spec §4.2).
    """
    batch, _, height, width = raw.shape
    grid = pixel_grid(height, width, raw.device)
    total = raw.new_zeros(())
    for b in range(batch):
        embedding = torch.tanh(raw[b, 0:2]) + grid
        sigma = raw[b, 2 : 2 + n_sigma]
        seed = torch.sigmoid(raw[b, 2 + n_sigma])
        labels = instances[b]
        cared = labels >= 0
        seed_loss = torch.sum(seed[labels == 0] ** 2)  # background seeds pushed to 0
        instance_loss = raw.new_zeros(())
        variance_loss = raw.new_zeros(())
        ids = torch.unique(labels)
        ids = ids[ids > 0]
        for instance_id in ids:
            mask = labels == instance_id
            centre = grid[:, mask].mean(1).view(2, 1, 1)  # to_center: mean pixel coordinate
            sigma_in = sigma[:, mask]
            sigma_mean = sigma_in.mean(1).view(n_sigma, 1)
            variance_loss = variance_loss + torch.mean((sigma_in - sigma_mean.detach()) ** 2)
            bandwidth = torch.exp(sigma_mean * 10.0).view(n_sigma, 1, 1)
            dist = torch.exp(-torch.sum((embedding - centre) ** 2 * bandwidth, 0))
            instance_loss = instance_loss + lovasz_hinge((dist * 2 - 1)[cared], mask[cared])
            seed_loss = seed_loss + foreground_weight * torch.sum((seed[mask] - dist[mask].detach()) ** 2)
        if ids.numel():
            instance_loss = instance_loss / ids.numel()
            variance_loss = variance_loss / ids.numel()
        seed_loss = seed_loss / (height * width)
        total = total + w_inst * instance_loss + w_var * variance_loss + w_seed * seed_loss
    return total / batch


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss on raw embeddings (spec §8.3).

    For each anchor: the farthest sample of its label (itself included) and the nearest sample
    of another label; loss = mean(max(0, d_ap - d_an + margin)). Returns 0 when all labels agree.
    """
    norms = (embeddings**2).sum(1)
    squared = norms[:, None] + norms[None, :] - 2.0 * embeddings @ embeddings.t()
    distance = torch.sqrt(torch.clamp(squared, min=1e-12))
    same = labels[:, None] == labels[None, :]
    if same.all():
        return embeddings.sum() * 0.0
    hardest_positive = torch.where(same, distance, torch.zeros_like(distance)).max(1).values
    hardest_negative = torch.where(same, torch.full_like(distance, float("inf")), distance).min(1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


def part_diversity_loss(attention: torch.Tensor) -> torch.Tensor:
    """FineTrack's diversity term: how much the part heads' attention maps overlap.

    Args:
        attention: ``(K, P, N)`` attention of P heads over N points (each head's map sums to 1).

    Returns:
        the mean cosine similarity between the maps of different heads (0 = disjoint parts,
        1 = identical); 0 with a single head.
    """
    parts = attention.shape[1]
    if parts < 2:
        return attention.sum() * 0.0
    unit = F.normalize(attention, dim=2)
    similarity = unit @ unit.transpose(1, 2)  # (K, P, P)
    off_diagonal = similarity.sum((1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(1)
    return (off_diagonal / (parts * (parts - 1))).mean()
