"""Every one of the 93 properties has its effect shown by a test.

The effects are shown in two files: compile-side properties in
``test_property_effects.py`` (artifacts or compile report), host-side and
location properties in ``test_property_effects_host.py`` (run report, output
directory, failure artifacts, or a documented reason). This test checks that
together they cover the whole contract, so the list of properties with no
shown effect is empty. (A property may be shown in both, e.g. ``multicore_mode``
changes the compiled program in ``batch`` and the host runtime in ``multithread``.)
"""

from __future__ import annotations

import importlib

from axdrive.config import BY_NAME


def test_the_two_effect_tables_cover_all_93_properties():
    compile_table = importlib.import_module("test_property_effects")
    compile_side = compile_table.COVERED
    host_side = importlib.import_module("test_property_effects_host").COVERED
    # what the compile-side table leaves to the host side is really shown there
    assert sorted(compile_table.HOST_SIDE - host_side) == []
    missing = sorted(set(BY_NAME) - compile_side - host_side)
    assert missing == [], f"properties with no effect shown: {missing}"
    assert (compile_side | host_side) <= set(BY_NAME)
    assert len(BY_NAME) == 93
