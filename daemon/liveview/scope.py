"""Location paths against a count session's scope: containment and the chain up to it.

Locations are ``/``-separated paths (``DC1/Room 302/R12``); a session's *scope* is the
set of paths it counts. The live count rolls its figures up the chain of a path's
ancestors, nearest first, as far as the scope root that contains it.
"""

from __future__ import annotations

from collections.abc import Collection


def related(a: str, b: str) -> bool:
    """True when one location contains the other (a rack inside the room counted)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root + "/")


def chain_to_scope(path: str, scope: Collection[str]) -> tuple[str, ...]:
    """``path`` and its ancestors, nearest first, up to the scope root that contains it."""
    parts = path.split("/")
    nodes: list[str] = []
    for i in range(len(parts), 0, -1):
        node = "/".join(parts[:i])
        nodes.append(node)
        if node in scope:
            break
    return tuple(nodes)
