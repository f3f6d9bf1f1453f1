"""DummyData: Caffe src/caffe/layers/dummy_data_layer.cpp.

Shapes: ``shape`` once for all tops or once per top; or the legacy ``num``, ``channels``,
``height``, ``width`` (each once or once per top), never both. ``data_filler``: none
(constant 0), one for all tops or one per top.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer


@register
class DummyData(InputLayer):
    """Caffe ``DummyData``: tops filled by fillers (constant 0 by default)."""

    type = "DummyData"

    def setup(self) -> None:
        self._check_tops(1, None)
        p = self.param.dummy_data_param
        ntop = len(self.param.top)
        if len(p.data_filler) not in (0, 1, ntop):
            raise self.error(f"{len(p.data_filler)} data_fillers for {ntop} tops; give 0, 1 or "
                             "one per top")
        legacy = {f: list(getattr(p, f)) for f in ("num", "channels", "height", "width")}
        if any(legacy.values()):
            if len(p.shape):
                raise self.error("both shape and the legacy num/channels/height/width are given")
            for f, v in legacy.items():
                if len(v) not in (1, ntop):
                    raise self.error(f"'{f}' must be given once or once per top ({ntop}); "
                                     f"given {len(v)} times")
            self.shapes = [tuple(int(legacy[f][0 if len(legacy[f]) == 1 else i])
                                 for f in ("num", "channels", "height", "width"))
                           for i in range(ntop)]
        else:
            if len(p.shape) not in (1, ntop):
                raise self.error(f"'shape' must be given once or once per top ({ntop}); given "
                                 f"{len(p.shape)} times")
            self.shapes = [tuple(int(d) for d in p.shape[0 if len(p.shape) == 1 else i].dim)
                           for i in range(ntop)]
        for s in self.shapes:
            if any(d < 0 for d in s):
                raise self.error(f"shape {s} has a negative dimension")

    def partial_shapes(self):
        return list(self.shapes)

    def data_fillers(self) -> list:
        """The FillerParameter of each top (None = constant 0)."""
        f = self.param.dummy_data_param.data_filler
        n = len(self.param.top)
        if not f:
            return [None] * n
        return [f[0] if len(f) == 1 else f[i] for i in range(n)]
