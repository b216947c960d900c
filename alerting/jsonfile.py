"""Small JSON state files written atomically (temp file in the same folder + ``os.replace``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a partial one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: str | Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def load_json(path: str | Path | None, default: Any) -> Any:
    """The file's JSON, or ``default`` when there is no file; a corrupt file raises ``ValueError``
    naming it (it is never silently replaced)."""
    if path is None or not Path(path).exists():
        return default
    try:
        return json.loads(Path(path).read_text())
    except ValueError as e:
        raise ValueError(f"{path}: corrupt state file: {e}") from None
