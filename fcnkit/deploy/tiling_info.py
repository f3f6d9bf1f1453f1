"""What tiled inference needs to know about a net: receptive field, output stride and a
recommended halo, computed by fcnkit's own analysis (:mod:`fcnkit.analysis`), plus the
preprocessing JSON stored beside a model.

- receptive field (pixels, per axis): :func:`fcnkit.analysis.receptive_fields` at the
  output blob (``rf += (k_eff - 1) * jump`` per convolution/pooling layer);
- output stride (pixels): the largest downsampling factor on the way from the input to any
  blob, ``max 1 / factor`` of the cumulative coordinate maps (FCN-32s: 32). Tile origins that
  are multiples of it keep every feature map on the same grid as a whole-scene forward;
- recommended halo (pixels): half the receptive field, ``ceil((rf - 1) / 2)``, rounded up to a
  multiple of the output stride: with that overlap on every side the centre of a tile sees
  all the context a whole-scene forward would (Long et al., FCN, sec. 3.1 on receptive fields).

These values travel in ONNX metadata (``fcnkit.receptive_field``, ``fcnkit.output_stride``,
``fcnkit.halo``) so that an .onnx or .engine file alone is enough for tiling.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: ONNX metadata keys written by the export and read by the Predictor.
META_KEYS = ("fcnkit.receptive_field", "fcnkit.output_stride", "fcnkit.halo")
#: The preprocess JSON of the contracts (a compiled dir's file; ONNX metadata key).
PREPROCESS_FILE = "preprocess.json"
PREPROCESS_META = "fcnkit.preprocess"


def tiling_info(compiled, output: str | None = None) -> dict[str, Any]:
    """Receptive field, output stride and recommended halo of a compiled net.

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet` (``.net``, ``.outputs``, ``.input_shapes``).
        output: the output blob (default: the first output).

    Returns:
        ``{"receptive_field": [rf_y, rf_x] | None, "output_stride": int | None,
        "halo": int | None}``, pixels of the input; None where the analysis cannot tell
        (a layer without a coordinate map on the way, such as InnerProduct).

    Never raises an FcnkitError: a net the analysis cannot walk gives Nones (tiling then
    needs --halo).
    """
    from fcnkit.analysis import analyse_coord_maps, receptive_fields
    from fcnkit.errors import FcnkitError

    net = compiled.net
    name = output or compiled.outputs[0]
    blob = net.final.get(name, name) if hasattr(net, "final") else name
    try:
        coords = analyse_coord_maps(net)
        rfs = receptive_fields(net, coords)
    except FcnkitError:  # analysis is advisory here; tiling falls back to --halo / --tile
        return {"receptive_field": None, "output_stride": None, "halo": None}
    maps = coords.blob_maps
    rf = rfs.get(blob)
    stride = 1
    for bm in maps.values():
        if bm.map is not None:
            for f in bm.map.factor:
                if f > 0:
                    stride = max(stride, math.ceil(1 / f))
    out_map = maps.get(blob)
    if rf is None or out_map is None or out_map.map is None:
        return {"receptive_field": None, "output_stride": stride, "halo": None}
    rf_px = [int(math.ceil(r)) for r in rf]
    return {"receptive_field": rf_px, "output_stride": stride, "halo": recommended_halo(max(rf_px), stride)}


def recommended_halo(receptive_field: int, stride: int) -> int:
    """``ceil((rf - 1) / 2)`` rounded up to a multiple of ``stride`` (pixels)."""
    half = max(0, math.ceil((receptive_field - 1) / 2))
    return int(math.ceil(half / stride) * stride) if stride > 1 else int(half)


def metadata(compiled, output: str | None = None) -> dict[str, str]:
    """The tiling values as ONNX ``metadata_props`` strings (JSON; "null" when unknown)."""
    info = tiling_info(compiled, output)
    return {"fcnkit.receptive_field": json.dumps(info["receptive_field"]),
            "fcnkit.output_stride": json.dumps(info["output_stride"]),
            "fcnkit.halo": json.dumps(info["halo"])}


def from_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Tiling values back from ONNX metadata (Nones for files written before they existed)."""
    out: dict[str, Any] = {}
    for key in META_KEYS:
        try:
            out[key.split(".", 1)[1]] = json.loads(meta[key]) if key in meta else None
        except (TypeError, ValueError):
            out[key.split(".", 1)[1]] = None
    rf = out["receptive_field"]
    out["receptive_field"] = tuple(int(v) for v in rf) if isinstance(rf, list) and len(rf) == 2 else None
    for k in ("output_stride", "halo"):
        out[k] = int(out[k]) if isinstance(out[k], (int, float)) and not isinstance(out[k], bool) else None
    return out


def preprocess_for(path: str | Path, weights: str | Path | None = None) -> dict | None:
    """The preprocess JSON stored with a Caffe model, as a dict (validated by fcnkit.geo).

    Looked up as ``<weights without .caffemodel>.preprocess.json`` beside a caffemodel, or
    ``preprocess.json`` in a compiled directory. Returns None when there is none.

    Raises:
        InputError: the file exists but is not JSON.
    """
    from fcnkit.errors import InputError

    candidates = []
    if weights is not None:
        w = Path(weights)
        stem = w.name[:-len(".caffemodel")] if w.name.endswith(".caffemodel") else w.stem
        candidates.append(w.with_name(stem + ".preprocess.json"))
    p = Path(path)
    if p.is_dir():
        candidates.append(p / PREPROCESS_FILE)
    for c in candidates:
        if c.is_file():
            try:
                return json.loads(c.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise InputError(f"{c}: not a valid preprocess JSON file ({e})") from None
    return None


def preprocess_from_metadata(meta: dict[str, str]) -> dict | None:
    """The preprocess JSON from ONNX metadata (``fcnkit.preprocess``), or None."""
    text = meta.get(PREPROCESS_META)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
