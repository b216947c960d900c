"""YAML files validated by pydantic models, with every error located by file, line and key path.

Used for the main config file, rule files and rule test files alike::

    data, lines = load_yaml(path)
    cfg = validate(MyModel, data, lines, source=str(path))   # raises ConfigError listing all errors
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
LineMap = dict[tuple, int]


class ConfigError(ValueError):
    """One or more located errors in a config, rule or test file."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class _LineLoader(yaml.SafeLoader):
    pass


def _walk(node: yaml.Node, path: tuple, lines: LineMap, loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if key in out:
                raise ConfigError([f"line {knode.start_mark.line + 1}: duplicate key {key!r}"])
            out[key] = _walk(vnode, path + (key,), lines, loader)
            lines[path + (key,)] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, path + (i,), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def loads_yaml(text: str, source: str = "<string>") -> tuple[Any, LineMap]:
    """Parse YAML text; returns the data and a map from key paths to 1-based line numbers."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        lines: LineMap = {}
        data = _walk(node, (), lines, loader) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError([f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}"]) from None
    except ConfigError as e:
        raise ConfigError([f"{source}: {m}" for m in e.errors]) from None
    finally:
        loader.dispose()
    return data, lines


def load_yaml(path: str | Path) -> tuple[Any, LineMap]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError([f"{p}: cannot read: {e.strerror or e}"]) from None
    return loads_yaml(text, str(p))


def line_of(lines: LineMap, loc: Sequence) -> int | None:
    """The line of the deepest known prefix of ``loc``."""
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc)


def format_loc(loc: Sequence) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe_errors(
    err: ValidationError, lines: LineMap, source: str, prefix: Sequence = (), label=None
) -> list[str]:
    """Located messages for every error in ``err``. ``prefix`` is where the validated object sits
    in the file; ``label(loc)`` may return extra context such as "group 'x', rule 2 'Foo'"."""
    out = []
    for e in err.errors():
        loc = tuple(prefix) + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic puts union/tagged branches into loc as strings that are not keys in the file
        loc_clean = tuple(p for p in loc if not (isinstance(p, str) and (p.endswith("]") or "-" in p and p not in lines)))
        line = line_of(lines, loc_clean)
        where = f"{source}:{line}" if line else source
        ctx = label(loc_clean) if label else None
        ctx = f" {ctx}:" if ctx else ""
        if e["type"] == "extra_forbidden":
            msg = f"key {format_loc(loc_clean)!s} was not used; typo, or not supported in this version"
        else:
            msg = f"{format_loc(loc_clean)}: {e['msg']}"
            if e["type"] == "missing":
                msg = f"{format_loc(loc_clean)}: required key is missing"
        out.append(f"{where}:{ctx} {msg}")
    return out


def validate(model: type[M], data: Any, lines: LineMap, source: str, prefix: Sequence = (), label=None) -> M:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` with every located error."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as e:
        raise ConfigError(describe_errors(e, lines, source, prefix, label)) from None
