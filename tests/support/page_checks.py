"""Checks run inside a real browser page (Playwright ``wait_for_function`` expressions)."""

from __future__ import annotations

IMAGES_LOADED = (
    "(selector) => (a => a.length > 0 && a.every(i => i.naturalWidth > 0))"
    "([...document.querySelectorAll(selector)])"
)
"""True once the page has at least one image matching ``selector`` and every one has pixels;
pass the selector as ``arg``."""
