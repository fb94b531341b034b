"""Writing a file so that readers and other writers never see half of it.

Cached exports, engines, quantized networks and checkpoints are written to a temporary file beside
the target and renamed over it. The temporary name is unique to each writer: two processes that
cache the same file at the same moment (two ``mots-ros`` runs exporting one checkpoint) each write
their own copy and the last rename wins. With one shared temporary name, the first rename took
the second writer's file away and its rename failed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh temporary path beside ``path``; what was written there replaces ``path`` at the end.

    If the block raises, ``path`` is left as it was and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
