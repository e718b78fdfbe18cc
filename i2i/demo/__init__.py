"""``i2i demo``: draw or upload an input in the browser and watch a trained model translate it.

The stack is the standard library's :class:`http.server.ThreadingHTTPServer` and one static page
(HTML, a ``<canvas>``, plain JavaScript): no new dependency, nothing fetched from the network by
the page, and a page a test drives in headless Chromium. Translation goes through the public
inference API (:func:`i2i.inference.load` and :class:`~i2i.inference.Translator`), so the demo
translates exactly as ``i2i translate`` does.

>>> from i2i.demo import DemoModel, Limits, load_models, make_server
>>> Limits().max_pixels
4194304
"""

from __future__ import annotations

from i2i.lazy import lazy_exports

_EXPORTS = {
    "DemoModel": "i2i.demo.models",
    "example_inputs": "i2i.demo.models",
    "load_models": "i2i.demo.models",
    "DemoServer": "i2i.demo.server",
    "Limits": "i2i.demo.server",
    "make_server": "i2i.demo.server",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["DemoModel", "DemoServer", "Limits", "example_inputs", "load_models", "make_server"]
