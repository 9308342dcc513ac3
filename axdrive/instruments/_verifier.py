"""Verifies the IR after every pass in debug mode.

On by ``--verify-each``, the API's ``verify=True``, or ``AXDRIVE_VERIFY=1``
(set by the test suite), so a plugin cannot leave a broken IR for the next
pass to trip over: the error names the pass that broke it.
"""

from __future__ import annotations

__all__ = ["VerifierInstrument"]

from ..errors import AxdriveError, PluginError
from ..passes.hookspec import hookimpl


class VerifierInstrument:
    @hookimpl(wrapper=True)
    def axdrive_pass_execute(self, pass_, ctx):  # type: ignore[no-untyped-def]
        stats = yield
        graph = ctx.graph
        if ctx.session.options.get("verify") and graph is not None and hasattr(graph, "verify"):
            try:
                graph.verify()
            except AxdriveError as exc:
                raise PluginError(
                    f"pass {pass_.name!r} (plugin {pass_.plugin or '?'}) left an invalid IR: {exc}",
                    plugin=pass_.plugin,
                    pass_name=pass_.name,
                    node=getattr(exc, "node", None),
                ) from exc
        return stats
