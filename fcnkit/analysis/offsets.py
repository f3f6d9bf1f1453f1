"""The per-layer scale factor / offset table and Crop-layer offset checking and fixing.

The table has the columns of Table 2 of the NVIDIA DIGITS 5 semantic-segmentation article
(layer, stride, pad, kernel size, scaling factor, cumulative scaling factor, offset,
cumulative offset), with the cumulative offset computed correctly (from the input, see
coord_maps.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

from fcnkit.analysis.coord_maps import CoordAnalysis, align_crop, analyse_coord_maps, format_fraction
from fcnkit.errors import OffsetError
from fcnkit.graph import Net
from fcnkit.layers import CoordMap, lookup


@dataclass
class OffsetRow:
    """One row of the offset table; per-axis values are (y, x) tuples, None when undefined."""

    name: str
    type: str
    kernel: tuple[int, int] | None
    stride: tuple[int, int] | None
    pad: tuple[int, int] | None
    factor: tuple[Fraction, Fraction] | None
    offset: tuple[Fraction, Fraction] | None
    cumulative_factor: tuple[Fraction, Fraction] | None
    cumulative_offset: tuple[Fraction, Fraction] | None
    note: str = ""


@dataclass
class CropRow:
    """A Crop layer's declared offsets and the ones computed from the coordinate maps.

    Attributes:
        layer: the Crop layer's name.
        axis: its first cropped axis.
        declared: the offset of every cropped axis (``axis`` .. 3) in the prototxt.
        computed: the offset to use on those axes (the declared one where it is one of
            the best alignments), or None when none can be computed (see ``error``).
        exact: the real-valued (y, x) offset of the alignment, or None.
        half_pixel: no integer (y, x) offset is exact; the two nearest are accepted.
        error: why no offset can be computed.
    """

    layer: str
    axis: int
    declared: list[int]
    computed: list[int] | None
    error: str = ""
    exact: tuple[Fraction, Fraction] | None = None
    half_pixel: bool = False

    @property
    def ok(self) -> bool:
        """The declared offsets are a best alignment (pixel-exact, or half-pixel)."""
        return self.computed is not None and self.declared == self.computed

    def status(self, strict: bool = False) -> str:
        """``ok``, ``ok (half-pixel: exact 0.5,0.5)``, ``MISMATCH`` or the error; with
        ``strict`` a half-pixel crop is ``HALF-PIXEL`` (not pixel-exact)."""
        if self.computed is None:
            return self.error or "no offset"
        if not self.ok:
            return "MISMATCH"
        if self.half_pixel:
            exact = ",".join(format_fraction(o) for o in self.exact)
            return (f"HALF-PIXEL (exact {exact}, no integer offset is pixel-exact)" if strict
                    else f"ok (half-pixel: exact {exact}; the nearest integers align equally well)")
        return "ok"

    def passes(self, strict: bool = False) -> bool:
        """``ok``, and pixel-exact too when ``strict``."""
        return self.ok and not (strict and self.half_pixel)


def offset_table(net: Net, coords: CoordAnalysis | None = None) -> list[OffsetRow]:
    """The per-layer scale factor / offset table (Table 2 of the DIGITS 5 article).

    Args:
        net: a checked net (any phase; unsupported layer types have no map).
        coords: its coordinate maps, when already computed (:func:`analyse_coord_maps`).

    Returns:
        One :class:`OffsetRow` per non-input layer, in net order: kernel, stride and pad
        (pixels, (y, x)); the layer's own factor (output pixels per input pixel) and
        offset (output pixels); the cumulative ones from the net input. Undefined values
        are None and ``note`` says why (e.g. an InnerProduct has no coordinate map).
    """
    coords = coords or analyse_coord_maps(net)
    rows = []
    for node in net.layers:
        if node.role == "input":
            continue
        lm = coords.layer_maps[node.name]
        bm = coords.blob_maps[node.tops[0]] if node.tops else None
        own = lm if isinstance(lm, CoordMap) else None
        note = lm if isinstance(lm, str) else ""
        if own is not None and bm is not None and bm.map is None:
            note = bm.reason
        win = node.layer.window()
        rows.append(OffsetRow(
            node.name, node.type,
            win.kernel if win else None, win.stride if win else None, win.pad if win else None,
            own.factor if own else None, own.offset if own else None,
            bm.map.factor if bm is not None and bm.map is not None else None,
            bm.map.offset if bm is not None and bm.map is not None else None,
            note))
    return rows


def crop_table(net: Net, ndim: int = 4) -> list[CropRow]:
    """Declared and computed offsets (pixels) of every Crop layer, per cropped axis, as
    :class:`CropRow` in net order; a crop whose offset cannot be computed has
    ``computed=None`` and the reason in ``error`` (nothing is raised).

    Computed offsets exist for the spatial axes (2 and 3 of an N, C, H, W blob); a crop
    along N or C keeps its declared offset there. A half-pixel crop (exact offset
    k + 1/2, :class:`fcnkit.analysis.coord_maps.CropAlignment`) keeps its declared offset
    when that is k or k + 1, else gets k.

    Crops are computed in net order, each later one through the *exact* offsets of the
    earlier ones (FCN-16s' score_pool4c feeds the blob that the final crop walks through;
    an FC-DenseNet skip concatenated with a half-pixel crop stays on the skip's grid).
    """
    rows = []
    exact_so_far: dict[str, tuple[Fraction, Fraction]] = {}
    for node in net.layers:
        if not node.layer.crops_to_reference:
            continue
        axis, declared = node.layer.declared_offsets(ndim)
        try:
            al = align_crop(net, node.bottoms[0], node.bottoms[1], exact_so_far)
        except OffsetError as e:
            rows.append(CropRow(node.name, axis, declared, None, f"{node.where()}: {e}"))
            continue
        exact_so_far[node.name] = al.exact
        axes = list(range(axis, ndim))
        pref = [declared[axes.index(a)] if a in axes else 0 for a in (2, 3)]
        oy, ox = al.choose(pref)
        spatial = {2: oy, 3: ox}
        computed = [spatial.get(a, declared[i]) for i, a in enumerate(axes)]
        rows.append(CropRow(node.name, axis, declared, computed, exact=al.exact,
                            half_pixel=al.half_pixel))
    return rows


#: The largest value of a uint32 field of caffe.proto (CropParameter.offset).
UINT32_MAX = 2**32 - 1


def _computed_fixes(net: Net) -> dict[str, list[int]]:
    """Crop layer name -> computed offsets; raises OffsetError (see fix_crop_offsets)."""
    fixes = {}
    for row in crop_table(net):
        if row.computed is None:
            raise OffsetError(row.error)
        if any(v > UINT32_MAX for v in row.computed):
            # CropParameter.offset is uint32 in caffe.proto: such a value cannot be written
            raise OffsetError(f"{net.layer(row.layer).where()}: computed offsets "
                              f"{list(row.computed)} exceed the largest value a Crop offset can "
                              f"hold ({UINT32_MAX}, uint32 in caffe.proto); check the pads of "
                              "the layers before it")
        fixes[row.layer] = row.computed
    return fixes


def fix_crop_offsets(net: Net, param=None):
    """A copy of the net's NetParameter with every Crop layer's offsets set to the computed
    ones (one value when all axes agree, else one per cropped axis).

    ``param`` defaults to ``net.param`` (the unfiltered V2 NetParameter: layers of other
    phases keep their offsets unless a layer of the same name in this phase was fixed).

    Raises:
        OffsetError: an offset cannot be computed, or exceeds uint32 (the message names the
            layer).
    """
    param = copy.deepcopy(param if param is not None else net.param)
    fixes = _computed_fixes(net)
    for lp in param.layer:
        cls = lookup(lp.type)
        if lp.name in fixes and cls is not None and cls.crops_to_reference:
            cls.write_offsets(lp, fixes[lp.name])
    return param


def fix_crop_offsets_text(net: Net, text: str, path: str | None = None) -> str:
    """The prototxt ``text`` of ``net`` with every Crop layer's offsets set to the computed
    ones, changing nothing else: comments, spacing and the spelling of unchanged numbers
    are kept (:func:`fcnkit.caffe.text_edit.set_layer_field`). Layers of other phases with
    the same name as a fixed Crop layer are fixed too, as in :func:`fix_crop_offsets`.

    Raises:
        OffsetError: an offset cannot be computed, or exceeds uint32.
        CaffeFormatError: a Crop layer has no ``layer { }`` block in the text.
    """
    from fcnkit.caffe.text_edit import set_layer_field

    fixes = _computed_fixes(net)
    if not fixes:
        return text

    def is_crop(type_name: str | None) -> bool:
        cls = lookup(type_name or "")
        return cls is not None and cls.crops_to_reference

    return set_layer_field(text, fixes, is_crop, "crop_param", "offset", path)
