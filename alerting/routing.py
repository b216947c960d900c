"""The routing tree: which receivers get an alert, and how it is grouped and repeated.

``Route.match(labels)`` walks the tree depth-first like Alertmanager: a node matches when its
matchers do; the deepest matching children win; a child's unset options come from its parent;
after a matching child, siblings are tried only when that child has ``continue: true``. A node
whose children all miss returns itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from alerting.config import RouteConfig
from alerting.matchers import Matcher, matches_all, parse_matcher


@dataclass(frozen=True)
class RouteOpts:
    receiver: str
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True)
class Route:
    opts: RouteOpts
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    children: tuple["Route", ...] = ()
    path: str = "/"

    def match(self, labels: Mapping[str, str]) -> list["Route"]:
        """The routes that take an alert with these labels (empty when this node does not match)."""
        if not matches_all(list(self.matchers), labels):
            return []
        found: list[Route] = []
        for child in self.children:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]


def build_route(cfg: RouteConfig, parent: RouteOpts | None = None, path: str = "/") -> Route:
    """The route tree of a config, with inherited options resolved."""
    base = parent or RouteOpts(receiver=cfg.receiver or "")
    opts = RouteOpts(
        receiver=cfg.receiver or base.receiver,
        group_by=tuple(cfg.group_by) if cfg.group_by is not None else base.group_by,
        group_wait=_or(cfg.group_wait, base.group_wait),
        group_interval=_or(cfg.group_interval, base.group_interval),
        repeat_interval=_or(cfg.repeat_interval, base.repeat_interval),
    )
    children = tuple(build_route(c, opts, f"{path}{i}/") for i, c in enumerate(cfg.routes))
    matchers = tuple(parse_matcher(m) for m in cfg.matchers)
    return Route(opts, matchers, cfg.continue_, children, path)


def _or(value: timedelta | None, default: timedelta) -> timedelta:
    return default if value is None else value


def group_key(route: Route, labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The aggregation group an alert falls in on ``route``: the route plus its group_by labels
    (``...`` in group_by means every label)."""
    if "..." in route.opts.group_by:
        return route.path, tuple(sorted(labels.items()))
    return route.path, tuple((k, labels.get(k, "")) for k in route.opts.group_by)
