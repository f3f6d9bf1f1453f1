"""Layer types of Caffe forks (issue 13 item 6): SSD, SegNet, ENet, PSPNet, Faster R-CNN.

BVLC Caffe refuses these types; the forks' nets in the wild use them. Each module names its
source fork and file; its parameters are the fork's ``*_param`` message, declared as an
extension of ``LayerParameter`` in schemas/caffe_forks.proto and read with
:func:`fcnkit.caffe.forks.fork_param`.

=================  ==================================  =====================================
type               fork                                module
=================  ==================================  =====================================
Normalize          SSD (weiliu89/caffe)                :mod:`.normalize`
Permute            SSD (weiliu89/caffe)                :mod:`.permute`
PriorBox           SSD (weiliu89/caffe)                :mod:`.prior_box`
DetectionOutput    SSD (weiliu89/caffe)                :mod:`.detection_output`
BN                 SegNet / ENet, PSPNet               :mod:`.bn`
Upsample           SegNet / ENet                       :mod:`.upsample`
Interp             PSPNet (hszhao/PSPNet, DeepLab v2)  :mod:`.interp`
SpatialDropout     ENet (TimoSaemann/ENet)             :mod:`.spatial_dropout`
ROIPooling         Faster R-CNN (py-faster-rcnn)       :mod:`.roi_pooling`
=================  ==================================  =====================================

SSD's ``Flatten`` with ``flatten_param { axis: 1 }`` is BVLC's Flatten (fcnkit.layers.flatten),
and SegNet's two-top MAX pooling (the argmax mask for Upsample) is BVLC's Pooling.
"""

from __future__ import annotations

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def fork_layers() -> dict[str, str]:
    """{Caffe type string: the fork it comes from} for the registered fork layer types
    (classes with a ``fork`` attribute), sorted by type."""
    from fcnkit.layers import lookup, registered_types

    out = {}
    for name in registered_types():
        fork = getattr(lookup(name), "fork", "")
        if fork:
            out[name] = fork
    return out
