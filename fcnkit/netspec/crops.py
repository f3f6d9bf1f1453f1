"""Crop offsets computed when a NetSpec is built, not typed.

``L.Crop(big, reference, offset=...)`` takes, besides numbers:

- ``"auto"``: the offset that aligns ``big`` with ``reference`` pixel-exactly, from the
  coordinate maps of the layers between them through their nearest common ancestor
  (:func:`fcnkit.analysis.crop_offset`; Caffe's ``python/caffe/coord_map.py`` ``crop``,
  Long et al. FCN). It does not depend on the input size. Refused, as Caffe's
  ``coord_map.crop`` refuses, when the scales differ or the offset is negative or not an
  integer: then no crop aligns the two blobs exactly. These are the FCN crops: 18 in
  FCN-AlexNet (conv1 pad 100), 19 in FCN-32s, 5 and 27 in FCN-16s, 5, 9 and 31 in FCN-8s.
- ``"center"``: ``(size(big) - size(reference)) // 2`` on every cropped axis, from the
  shapes at the net's declared input size (:func:`fcnkit.analysis.infer_shapes`): the
  centre crop of FC-DenseNet implementations (Jégou et al.'s Lasagne code,
  bfortuner/pytorch_tiramisu ``center_crop``), for nets whose branches are not
  pixel-aligned. The offset is fixed in the prototxt, so other input sizes get the same
  offset, as in Caffe.

Offsets are resolved in layer order, each with the earlier crops already set (a crop's
offset moves everything downstream of it). The net is loaded in the phase (and stages)
of the crop's first ``include`` rule, else TEST, else TRAIN.
"""

from __future__ import annotations

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import FcnkitError, NetDefinitionError, OffsetError
from fcnkit.netspec.deferred import Deferred, deferred_field

MODES = ("auto", "center")


@deferred_field("Crop", "offset")
class CropOffset(Deferred):
    """A Crop offset computed at build time; ``mode`` is ``"auto"`` or ``"center"``.

    Raises:
        NetDefinitionError: another mode.
    """

    def __init__(self, mode: str):
        if mode not in MODES:
            raise NetDefinitionError(f"Crop offset '{mode}' is not a number, 'auto' (coordinate "
                                     "maps, pixel-exact) or 'center' (centre crop from shapes)")
        self.mode = mode

    def __repr__(self) -> str:
        return f"CropOffset({self.mode!r})"

    def resolve(self, net: caffe_pb2.NetParameter, lp: caffe_pb2.LayerParameter) -> None:
        """Set ``lp.crop_param.offset`` (see the module docstring).

        Raises:
            OffsetError: an ``"auto"`` offset does not exist (message names the layer and
                why), or a ``"center"`` crop would be negative.
            ShapeError, InputError: ``"center"`` needs shapes that cannot be inferred.
            NetDefinitionError: the net around the crop is not valid.
        """
        from fcnkit.graph import load_net
        from fcnkit.layers.crop import Crop

        graph = load_net(_upstream(net, lp), _state_for(lp), allow_unsupported=self.mode == "auto")
        missing = [b for b in lp.bottom if b not in graph.final]
        if len(lp.bottom) != 2 or missing:
            raise NetDefinitionError(f"layer '{lp.name}' (Crop) needs two bottoms produced "
                                     f"by earlier layers; got {list(lp.bottom)}")
        bottoms = [graph.final[b] for b in lp.bottom]
        offs = _auto(graph, lp, bottoms) if self.mode == "auto" else _center_of(graph, lp, bottoms)
        Crop.write_offsets(lp, offs)


def _state_for(lp: caffe_pb2.LayerParameter):
    from fcnkit.graph import NetState
    from fcnkit.graph.state import layer_included

    if len(lp.include):
        rule = lp.include[0]
        return NetState(rule.phase if rule.HasField("phase") else 1,
                        rule.min_level if rule.HasField("min_level") else 0, tuple(rule.stage))
    for phase in (1, 0):
        state = NetState(phase)
        if layer_included(state, lp):
            return state
    raise NetDefinitionError(f"layer '{lp.name}' (Crop) is excluded in both TEST and TRAIN, so "
                             "its offset cannot be computed; give it a number")


def _center(graph, lp, bottoms) -> list[int]:
    from fcnkit.analysis import infer_shapes

    shapes = infer_shapes(graph)
    s0, s1 = shapes[bottoms[0]], shapes[bottoms[1]]
    p = lp.crop_param
    axis = p.axis + len(s0) if p.axis < 0 else p.axis
    offs = [(a - b) // 2 for a, b in zip(s0[axis:], s1[axis:])]
    if len(s0) != len(s1) or not 0 <= axis < len(s0):
        raise OffsetError(f"layer '{lp.name}' (Crop, offset='center'): bottoms {s0} and {s1} "
                          f"cannot be cropped from axis {p.axis}")
    if any(o < 0 for o in offs):
        raise OffsetError(f"layer '{lp.name}' (Crop, offset='center'): bottom "
                          f"'{lp.bottom[0]}' {s0} is smaller than the reference "
                          f"'{lp.bottom[1]}' {s1}; nothing to crop")
    return offs


def _upstream(net: caffe_pb2.NetParameter, lp: caffe_pb2.LayerParameter) -> caffe_pb2.NetParameter:
    """The net without ``lp`` and the layers after it (a crop depends only on those before)."""
    index = next(i for i, layer in enumerate(net.layer) if layer is lp or layer == lp)
    sub = caffe_pb2.NetParameter()
    sub.CopyFrom(net)
    del sub.layer[index:]
    return sub


def _auto(graph, lp, bottoms) -> list[int]:
    from fcnkit.analysis import crop_offset

    try:
        offs = list(crop_offset(graph, bottoms[0], bottoms[1]))
    except OffsetError as e:
        raise OffsetError(
            f"layer '{lp.name}' (Crop, offset='auto'): {e}. A net whose branches "
            "are not pixel-aligned can use offset='center' (centre crop from shapes)"
        ) from None
    if lp.crop_param.axis not in (2, -2):
        raise NetDefinitionError(
            f"layer '{lp.name}' (Crop, offset='auto'): coordinate maps give the "
            f"offsets of H and W only, so the crop axis must be 2, not "
            f"{lp.crop_param.axis}")
    return offs


def _center_of(graph, lp, bottoms) -> list[int]:
    try:
        return _center(graph, lp, bottoms)
    except OffsetError:
        raise
    except FcnkitError as e:
        raise type(e)(f"layer '{lp.name}' (Crop, offset='center') needs every shape: {e}") from None
