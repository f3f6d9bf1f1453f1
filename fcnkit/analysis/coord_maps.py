"""Scale factors and offsets of every blob, and the crop offset between two blobs.

Each layer type gives its own coordinate map ``x_top = F x_bottom + O`` per spatial axis
(:class:`fcnkit.layers.CoordMap`). Here they are composed:

- *cumulative* maps: from the net input to every blob, walking forward; where branches
  meet (Eltwise, Concat, ...) the maps through each bottom must agree, else an
  inconsistency is recorded;
- *crop offsets*: between two blobs, through their nearest common ancestor, as Caffe's
  python/caffe/coord_map.py ``crop`` does: the map between them must have factor 1, and
  the offset must be a non-negative integer (pixel-exact) or, where Caffe's ``crop``
  gives up, half-way between two integers (*half-pixel*, :class:`CropAlignment`: the two
  nearest integer offsets are equally good, as in FC-DenseNet's transitions up).

Composition: a layer L1 with map (F1, O1) on top of a blob with cumulative map (F, O)
gives ``(F1 F, F1 O + O1)``; equivalently, in units of the deeper layer, "O2/F + O1" of
the NVIDIA DIGITS 5 article (F cumulative), whose Table 2 cumulative column is wrong but
whose final offset, 18, is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping, Sequence

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


def layer_map(node: LayerNode,
              crops: Mapping[str, Sequence[Fraction | int]] | None = None) -> CoordMap | str:
    """The layer's own map, or the reason it has none.

    ``crops`` overrides the (y, x) offsets of Crop layers by name (used while computing
    offsets layer by layer, so a later crop does not depend on an earlier declared one).
    """
    if crops and node.layer.crops_to_reference and node.name in crops:
        return node.layer.coord_map_at(crops[node.name])
    if node.role == "input":
        return IDENTITY
    try:
        return node.layer.coord_map()
    except NoCoordMap as e:
        return str(e) or f"{node.type} has no coordinate map"


def analyse_coord_maps(net: Net) -> CoordAnalysis:
    """Compose the coordinate maps of every layer of ``net`` (see module docstring).

    Returns:
        A :class:`CoordAnalysis`: per-layer maps, per-blob cumulative maps from the net
        input (offsets in pixels of the blob, exact fractions), and one message per layer
        whose bottoms descend from the same input but sit at different maps (branches that
        meet misaligned: an Eltwise or Concat after a missing or wrong Crop).
    """
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
        idx = node.layer.coord_bottoms()
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
        if node.layer.crops_to_reference:
            top_map = _half_pixel_crop_map(top_map, first.root, out.blob_maps.get(node.bottoms[1]))
        for t in node.tops:
            out.blob_maps[t] = BlobMap(top_map, first.root)
    return out


def _half_pixel_crop_map(declared: CoordMap, root: str, reference: BlobMap | None) -> CoordMap:
    """A Crop's top map: the declared offset's, or the reference's when the declared offset
    is one of the two nearest integers of a half-pixel alignment (see
    :class:`CropAlignment`), so that branches joining the reference after such a crop are
    not reported as misaligned (the half pixel is reported once, at the crop)."""
    if reference is None or reference.map is None or reference.root != root:
        return declared
    r = reference.map
    diff = [abs(a - b) for a, b in zip(declared.offset, r.offset)]
    if declared.factor == r.factor and any(diff) and all(d in (0, Fraction(1, 2)) for d in diff):
        return r
    return declared


def describe(m: CoordMap) -> str:
    return (f"factor ({format_fraction(m.factor[0])}, {format_fraction(m.factor[1])}), "
            f"offset ({format_fraction(m.offset[0])}, {format_fraction(m.offset[1])})")


def format_fraction(x: Fraction | None) -> str:
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
                      crops: Mapping[str, Sequence[Fraction | int]] | None = None
                      ) -> dict[str, CoordMap]:
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
        for i in node.layer.coord_bottoms():
            bottom = node.bottoms[i]
            m = lm.then(found[b])
            if bottom not in found:
                found[bottom] = m
                frontier.append(bottom)
    return found


def _depth(net: Net, blob: str) -> int:
    node = net.producer.get(blob)
    return node.index if node is not None else -1


@dataclass(frozen=True)
class CropAlignment:
    """How a cropped blob lines up with its reference, from the coordinate maps.

    Attributes:
        exact: the real-valued (y, x) offset, in pixels of the cropped blob, at which the
            cropped blob's grid coincides with the reference's (exact fractions).
        candidates: per axis, the integer crop offsets that align the two best: ``(k,)``
            when the exact offset is the integer ``k`` (pixel-exact); ``(k, k + 1)``, the
            non-negative ones of them, when it is ``k + 1/2`` (*half-pixel*: both leave the
            grids half a pixel apart and no integer does better).

    Half-pixel crops are what FC-DenseNet's transitions up give (Jégou et al.; a 2x2/2
    pooling, map x/2 - 1/4, then a 3x3/2 transposed convolution, 2x + 1, put the upsampled
    map at x + 1/2 of the skip connection): the centre crop of the implementations takes
    ``k`` at even sizes and ``k + 1`` at odd ones, each as good as the other.
    """

    exact: tuple[Fraction, Fraction]
    candidates: tuple[tuple[int, ...], tuple[int, ...]]

    @property
    def half_pixel(self) -> bool:
        """Whether some axis has no pixel-exact offset (only the two nearest integers)."""
        return any(o.denominator != 1 for o in self.exact)

    def choose(self, preferred: Sequence[int] | None = None) -> tuple[int, int]:
        """The integer (y, x) offset to crop at: per axis, ``preferred`` when it is a
        candidate (a declared half-pixel crop is kept), else the lowest candidate."""
        pref = list(preferred) if preferred is not None else [None, None]
        return tuple(p if p in c else c[0] for p, c in zip(pref, self.candidates))


def align_crop(net: Net, cropped: str, reference: str,
               crops: Mapping[str, Sequence[Fraction | int]] | None = None) -> CropAlignment:
    """How ``cropped`` must be cropped to line up with ``reference`` (both blob names or ids).

    Computed through their nearest common ancestor, as Caffe's python/caffe/coord_map.py
    ``crop`` does: with ``x_c = F x_a + O_c`` and ``x_r = F x_a + O_r``, the exact offset
    is ``O_c - O_r``. ``crops`` overrides the (y, x) offsets of Crop layers on the way, by
    layer name (exact fractions allowed: a half-pixel crop is then taken as aligned with
    its reference, so that the misalignment is reported once, at that crop).

    Returns:
        A :class:`CropAlignment` (pixel-exact or half-pixel).

    Raises:
        OffsetError: no common ancestor through mappable layers; the factors differ (the
            blobs are at different scales); the offset is negative (the cropped blob would
            have to be padded) or a fraction other than k + 1/2.
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
            f"'{net.blob_name[anc]}' they are at scale factors ({format_fraction(mc.factor[0])}, "
            f"{format_fraction(mc.factor[1])}) and ({format_fraction(mr.factor[0])}, {format_fraction(mr.factor[1])}); a crop "
            "needs equal scales (check the upsampling stride)")
    exact = tuple(oc - orr for oc, orr in zip(mc.offset, mr.offset))
    candidates = []
    for axis, o in zip("yx", exact):
        if o.denominator == 1:
            cand = (int(o),)
        elif o.denominator == 2:
            cand = tuple(k for k in (math.floor(o), math.ceil(o)) if k >= 0)
        else:
            raise OffsetError(
                f"cannot crop '{cname}' to '{rname}': the offset along {axis} is {format_fraction(o)}, not "
                "an integer (nor half-way between two), so no crop aligns them (check kernel "
                "sizes and pads)")
        if not cand or cand[0] < 0:
            raise OffsetError(
                f"cannot crop '{cname}' to '{rname}': the offset along {axis} is {format_fraction(o)} < 0, "
                f"so '{cname}' starts inside '{rname}' (it would need padding, not cropping; "
                "increase the padding of the first convolution)")
        candidates.append(cand)
    return CropAlignment(exact, tuple(candidates))


def crop_offset(net: Net, cropped: str, reference: str,
                crops: Mapping[str, Sequence[Fraction | int]] | None = None) -> tuple[int, int]:
    """The pixel-exact (y, x) offset at which ``cropped`` must be cropped to align with
    ``reference``; see :func:`align_crop` (same arguments).

    Raises:
        OffsetError: as :func:`align_crop`, and also for a half-pixel alignment (no integer
            offset is exact; :func:`align_crop` gives the two nearest ones).
    """
    al = align_crop(net, cropped, reference, crops)
    if al.half_pixel:
        axis, o, near = next((a, o, " and ".join(map(str, c)))
                             for a, o, c in zip("yx", al.exact, al.candidates) if o.denominator != 1)
        raise OffsetError(
            f"cannot crop '{net.blob_name[net.blob(cropped)]}' to "
            f"'{net.blob_name[net.blob(reference)]}': the offset along {axis} is {format_fraction(o)}, not "
            f"an integer, so no crop aligns them pixel-exactly (the nearest, {near}, leave them "
            "half a pixel apart; check kernel sizes and pads)")
    return al.exact[0].numerator, al.exact[1].numerator
