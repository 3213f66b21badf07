"""The name a request is known by in metrics and logs: its route template.

Raw paths carry customer ids (``/v1/customers/cust-1001``) and are unbounded; the
template (``/v1/customers/{customer_id}``) is neither, so it is the only form of a
path that goes into a metric label or a log line.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope


def route_template(scope: Scope) -> str:
    """The matched route's path template; unmatched paths share one label value."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
