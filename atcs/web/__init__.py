"""The live web dashboard and HTTP API of ``atcs run`` (``[dashboard]`` in the config).

:func:`atcs.live_view.attach_dashboard` adds it to a built engine; see ``docs/dashboard.md``.
"""

from __future__ import annotations

from atcs.web.dashboard import Dashboard, build_context

__all__ = ["Dashboard", "build_context"]
