"""Scale factors and offsets of every blob, and the crop offset between two blobs.

Each layer type gives its own coordinate map ``x_top = F x_bottom + O`` per spatial axis
(:class:`fcnkit.layers.CoordMap`). Here they are composed:

- *cumulative* maps: from the net input to every blob, walking forward; where branches
  meet (Eltwise, Concat, ...) the maps through each bottom must agree, else an
  inconsistency is recorded;
- *crop offsets*: between two blobs, through their nearest common ancestor, as Caffe's
  python/caffe/coord_map.py ``crop`` does: the map between them must have factor 1, and
  the offset must be a non-negative integer.

Composition: a layer L1 with map (F1, O1) on top of a blob with cumulative map (F, O)
gives ``(F1 F, F1 O + O1)``; equivalently, in units of the deeper layer, "O2/F + O1" of
the NVIDIA DIGITS 5 article (F cumulative), whose Table 2 cumulative column is wrong but
whose final offset, 18, is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from fcnkit.errors import OffsetError
from fcnkit.graph import LayerNode, Net
from fcnkit.layers import IDENTITY, CoordMap, NoCoordMap


@dataclass
class BlobMap:
    """Cumulative map of one blob from its root input blob (or why there is none)."""

    map: CoordMap | None
    root: str | None
    reason: str = ""


@dataclass
class CoordAnalysis:
    """Per-layer and cumulative coordinate maps of a net.

    Attributes:
        layer_maps: layer name -> its own CoordMap, or the reason string when it has none.
        blob_maps: blob id -> BlobMap relative to the net input it descends from.
        inconsistencies: messages for layers whose bottoms' maps disagree.
    """

    layer_maps: dict[str, CoordMap | str] = field(default_factory=dict)
    blob_maps: dict[str, BlobMap] = field(default_factory=dict)
    inconsistencies: list[str] = field(default_factory=list)


def layer_map(node: LayerNode, crops: dict[str, tuple[int, int]] | None = None) -> CoordMap | str:
    """The layer's own map, or the reason it has none.

    ``crops`` overrides the (y, x) offsets of Crop layers by name (used while computing
    offsets layer by layer, so a later crop does not depend on an earlier declared one).
    """
    if crops and node.type == "Crop" and node.name in crops:
        oy, ox = crops[node.name]
        return CoordMap.make((1, 1), (-oy, -ox))
    if node.role == "input":
        return IDENTITY
    try:
        return node.impl.coord_map()
    except NoCoordMap as e:
        return str(e) or f"{node.type} has no coordinate map"


def analyse_coord_maps(net: Net) -> CoordAnalysis:
    """Compose the coordinate maps of every layer of ``net`` (see module docstring)."""
    out = CoordAnalysis()
    for node in net.layers:
        lm = layer_map(node)
        out.layer_maps[node.name] = lm
        if node.role == "input":
            for t in node.tops:
                out.blob_maps[t] = BlobMap(IDENTITY, t)
            continue
        if isinstance(lm, str):
            for t in node.tops:
                out.blob_maps[t] = BlobMap(None, None, f"layer '{node.name}': {lm}")
            continue
        idx = node.impl.coord_bottoms()
        maps = [out.blob_maps[node.bottoms[i]] for i in idx]
        missing = next((m for m in maps if m.map is None), None)
        if missing is not None or not maps:
            reason = missing.reason if missing else f"layer '{node.name}' has no mappable bottom"
            for t in node.tops:
                out.blob_maps[t] = BlobMap(None, None, reason)
            continue
        first = maps[0]
        for i, m in zip(idx[1:], maps[1:]):
            if m.root == first.root and m.map != first.map:
                out.inconsistencies.append(
                    f"{node.where()}: bottom '{net.blob_name[node.bottoms[i]]}' is at "
                    f"{describe(m.map)} but bottom '{net.blob_name[node.bottoms[idx[0]]]}' is at "
                    f"{describe(first.map)} relative to the input; the branches are misaligned "
                    "(a missing Crop?)")
        top_map = first.map.then(lm)
        for t in node.tops:
            out.blob_maps[t] = BlobMap(top_map, first.root)
    return out


def describe(m: CoordMap) -> str:
    return (f"factor ({fmt(m.factor[0])}, {fmt(m.factor[1])}), "
            f"offset ({fmt(m.offset[0])}, {fmt(m.offset[1])})")


def fmt(x: Fraction | None) -> str:
    """An exact fraction as a decimal: exact when it terminates, else 6 decimals."""
    if x is None:
        return "-"
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        # terminating decimal: print all its digits
        digits = 0
        y = x
        while y.denominator != 1:
            y *= 10
            digits += 1
        return f"{float(x):.{digits}f}"
    return f"{float(x):.6f}"


def maps_to_ancestors(net: Net, blob: str,
                      crops: dict[str, tuple[int, int]] | None = None) -> dict[str, CoordMap]:
    """For every ancestor blob ``a`` reachable through mappable layers: the map from ``a``
    to ``blob`` (``x_blob = F x_a + O``). Crop layers map only through their first bottom;
    ``crops`` overrides Crop offsets by layer name (see :func:`layer_map`).
    """
    found: dict[str, CoordMap] = {blob: IDENTITY}
    frontier = [blob]
    while frontier:
        b = frontier.pop()
        node = net.producer.get(b)
        if node is None or node.role == "input":
            continue
        lm = layer_map(node, crops)
        if isinstance(lm, str):
            continue
        for i in node.impl.coord_bottoms():
            bottom = node.bottoms[i]
            m = lm.then(found[b])
            if bottom not in found:
                found[bottom] = m
                frontier.append(bottom)
    return found


def _depth(net: Net, blob: str) -> int:
    node = net.producer.get(blob)
    return node.index if node is not None else -1


def crop_offset(net: Net, cropped: str, reference: str,
                crops: dict[str, tuple[int, int]] | None = None) -> tuple[int, int]:
    """The (y, x) offset at which ``cropped`` must be cropped to align with ``reference``.

    Both are blob names or ids; ``crops`` overrides the offsets of Crop layers on the way
    (by layer name). Computed through their nearest common ancestor: with
    ``x_c = F x_a + O_c`` and ``x_r = F x_a + O_r``, the offset is ``O_c - O_r``.

    Raises:
        OffsetError: no common ancestor through mappable layers; the factors differ
            (the blobs are at different scales); the offset is negative (the cropped blob
            would have to be padded) or fractional (no pixel-exact alignment).
    """
    c, r = net.blob(cropped), net.blob(reference)
    cname, rname = net.blob_name[c], net.blob_name[r]
    from_c = maps_to_ancestors(net, c, crops)
    from_r = maps_to_ancestors(net, r, crops)
    common = [a for a in from_c if a in from_r]
    if not common:
        raise OffsetError(f"blobs '{cname}' and '{rname}' have no common ancestor through "
                          "layers with coordinate maps; a crop offset cannot be computed")
    anc = max(common, key=lambda a: _depth(net, a))
    mc, mr = from_c[anc], from_r[anc]
    if mc.factor != mr.factor:
        raise OffsetError(
            f"cannot crop '{cname}' to '{rname}': relative to their common ancestor "
            f"'{net.blob_name[anc]}' they are at scale factors ({fmt(mc.factor[0])}, "
            f"{fmt(mc.factor[1])}) and ({fmt(mr.factor[0])}, {fmt(mr.factor[1])}); a crop "
            "needs equal scales (check the upsampling stride)")
    off = tuple(oc - orr for oc, orr in zip(mc.offset, mr.offset))
    for axis, o in zip("yx", off):
        if o < 0:
            raise OffsetError(
                f"cannot crop '{cname}' to '{rname}': the offset along {axis} is {fmt(o)} < 0, "
                f"so '{cname}' starts inside '{rname}' (it would need padding, not cropping; "
                "increase the padding of the first convolution)")
        if o.denominator != 1:
            raise OffsetError(
                f"cannot crop '{cname}' to '{rname}': the offset along {axis} is {fmt(o)}, not "
                "an integer, so no crop aligns them pixel-exactly (check kernel sizes and pads)")
    return int(off[0]), int(off[1])
