"""Reading and writing checkpoints, official ones included (spec §10.2).

Official files are ``torch.save`` dicts holding ``model_state_dict`` (keys prefixed ``module.`` by
DataParallel) plus training bookkeeping, written by torch 1.3.1 in the legacy format. Our own files
use the same wrapper, so the official loading code reads them too, plus a ``mots_ros`` entry that
records how to rebuild the model.

Every load uses ``torch.load(weights_only=True)``: a file that would need to run code to
unpickle is refused, never executed.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from mots_ros.atomic_files import replacing
from mots_ros.errors import CheckpointError

_PREFIX = "module."
_MAX_LISTED = 8


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Reads a checkpoint file without a model.

    Returns:
        ``(state_dict, metadata)``: the weights with any ``module.`` prefix removed, and the
        wrapper's other entries (epoch, ``mots_ros`` build info, ...) except optimiser state.

    Raises:
        CheckpointError: the file is missing, unreadable, refused by ``weights_only`` loading, or
            holds no state dict.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted download or copy?")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch wraps the unpickler's own reason, which tells code references from corruption.
        detail = (str(err.__context__ or err).strip().splitlines() or [type(err).__name__])[0]
        if "GLOBAL" in detail:
            raise CheckpointError(
                f"checkpoint {path} was refused by safe (weights_only) loading: it references Python code "
                f"({detail}); such a file may be malicious and is never executed"
            ) from err
        raise CheckpointError(f"checkpoint {path} cannot be read: corrupt or not a torch checkpoint ({detail})") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, ValueError... for broken files
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(err).__name__}: {err}") from err

    if not isinstance(loaded, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(loaded).__name__}, expected a dict of tensors")
    metadata: dict = {}
    for wrapper_key in ("model_state_dict", "state_dict"):
        if wrapper_key in loaded and isinstance(loaded[wrapper_key], dict):
            metadata = {k: v for k, v in loaded.items() if k not in (wrapper_key, "optim_state_dict")}
            loaded = loaded[wrapper_key]
            break
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"checkpoint {path} has no 'model_state_dict' and its entries are not all tensors "
            f"(for example {_listing(not_tensors)})"
        )
    state_dict = {(k[len(_PREFIX) :] if k.startswith(_PREFIX) else k): v for k, v in loaded.items()}
    return state_dict, metadata


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict:
    """Loads a checkpoint into ``model``, strictly.

    Accepts the official wrapper dict, bare state dicts, ``module.``-prefixed keys, the legacy
    (pre-zip) torch format, and the project's own files. ``num_batches_tracked`` buffers missing
    from very old files are tolerated.

    Returns:
        The checkpoint's metadata (see :func:`read_checkpoint`).

    Raises:
        CheckpointError: naming the missing keys, unexpected keys and shape mismatches.
    """
    state_dict, metadata = read_checkpoint(path)
    apply_state_dict(model, state_dict, source=str(path))
    return metadata


def apply_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str = "state dict") -> None:
    """Loads prefix-free weights into ``model`` strictly; errors name keys and shapes (see load_checkpoint)."""
    state_dict = dict(state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_listing(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_listing(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches ({_listing(mismatched)})")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    not_finite = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if not_finite:
        raise CheckpointError(f"{source} has NaN or infinite values in {len(not_finite)} tensors ({_listing(not_finite)})")
    for key, value in expected.items():
        if key not in state_dict:  # only num_batches_tracked can get here
            state_dict[key] = value
    model.load_state_dict(state_dict, strict=True)


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    build: dict,
    epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict | None = None,
) -> None:
    """Writes ``model`` in the official wrapper format, with ``module.`` prefixed keys.

    Args:
        build: how to rebuild the model, stored under ``mots_ros`` (e.g. ``{"model":
            "SpatialEmbeddingNet", "width": 0.5, "num_classes": [4, 1]}``).
        epoch: the last finished epoch.
        optimizer: its state is stored for resuming training.
        extra: more metadata (numbers, strings, lists) stored next to the weights.
    """
    wrapper = {
        "epoch": int(epoch),
        "best_iou": 0.0,
        "best_seed": 0.0,
        "model_state_dict": {_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optim_state_dict": optimizer.state_dict() if optimizer is not None else {},
        "logger_data": {},
        "mots_ros": dict(build),
    }
    if extra:
        wrapper.update(extra)
    with replacing(path) as tmp:  # never leave a half-written checkpoint behind
        torch.save(wrapper, tmp)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")
