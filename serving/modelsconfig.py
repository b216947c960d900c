"""TensorFlow Serving's ``models.config`` (ModelServerConfig, protobuf text format).

We write one ``config`` per model with a ``specific`` version policy pinning the live version;
TF Serving reloads it when started with ``--model_config_file`` and
``--model_config_file_poll_wait_seconds``. Written atomically (temp file + ``os.replace``), so the
server never reads half a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from alerting.jsonfile import write_atomic


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: str
    version: int
    platform: str = "tensorflow"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(entries: list[ModelEntry]) -> str:
    out = ["model_config_list {"]
    for e in sorted(entries, key=lambda e: e.name):
        out += [
            "  config {",
            f"    name: {_quote(e.name)}",
            f"    base_path: {_quote(e.base_path)}",
            f"    model_platform: {_quote(e.platform)}",
            "    model_version_policy {",
            "      specific {",
            f"        versions: {e.version}",
            "      }",
            "    }",
            "  }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"


def write(path: str | Path, entries: list[ModelEntry]) -> None:
    write_atomic(path, render(entries))


_CONFIG_RE = re.compile(r"config\s*\{(.*?)model_version_policy\s*\{\s*specific\s*\{(.*?)\}", re.S)
_NAME_RE = re.compile(r'name:\s*"((?:[^"\\]|\\.)*)"')
_VERSION_RE = re.compile(r"versions:\s*(\d+)")


def pinned_versions(text: str) -> dict[str, list[int]]:
    """Model name -> pinned versions, read back from a models.config (the subset we write)."""
    out = {}
    for head, policy in _CONFIG_RE.findall(text):
        name = _NAME_RE.search(head)
        if name:
            out[name.group(1).replace('\\"', '"').replace("\\\\", "\\")] = [int(v) for v in _VERSION_RE.findall(policy)]
    return out


def read_pins(path: str | Path) -> dict[str, list[int]]:
    p = Path(path)
    return pinned_versions(p.read_text()) if p.exists() else {}
