"""GC drivers (DESIGN section 6): the port through which the flow runs a GC task.

ACR's public OpenAPI has no GC action, so the flow talks to a :class:`GcDriver`:
``emulator`` calls the emulator's own GC actions through the same SDK client stack;
``console`` pauses the flow for a person to click in the console and then watches the
planned tags disappear through the public API.
"""

from acr_gc.gc.driver import GcDriver, GcStatus, TERMINAL_STATES, make_driver

__all__ = ["GcDriver", "GcStatus", "TERMINAL_STATES", "make_driver"]
