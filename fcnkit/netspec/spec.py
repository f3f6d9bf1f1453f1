"""The net-specification DSL: Python code that writes Caffe NetParameters.

In the spirit of Caffe's ``python/caffe/net_spec.py`` (``NetSpec``, ``L``, ``P``)::

    from fcnkit.netspec import NetSpec, L

    n = NetSpec("lenet")
    n.data = L.Input(shape=dict(dim=[1, 1, 28, 28]))
    n.conv1 = L.Convolution(n.data, num_output=20, kernel_size=5,
                            param=[dict(lr_mult=1), dict(lr_mult=2)],
                            weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool="MAX", kernel_size=2, stride=2)
    net = n.to_proto()          # a caffe_pb2.NetParameter, V2

``L.<Type>(*bottoms, **kwargs)`` makes one layer of Caffe type ``<Type>`` and returns its
top (or a tuple of tops with ``ntop=k``; None with ``ntop=0``). Keyword arguments go, in
this order of preference, to the fields of the type's own parameter message
(``convolution_param`` for Convolution and Deconvolution, ``softmax_param`` then
``loss_param`` for SoftmaxWithLoss, ...) and to the fields of ``LayerParameter``
(``param``, ``include``, ``exclude``, ``loss_weight``, ``propagate_down``, ``name`` ...);
a keyword ending in ``_param`` always names a LayerParameter field. Values follow
:mod:`fcnkit.netspec.proto` (dicts for messages, lists for repeated fields, enum names as
strings). Three keywords are the DSL's own:

- ``ntop``: the number of tops (default 1);
- ``in_place=True``: the tops are the bottoms (Caffe's in-place computation, ReLU on
  ``conv1`` writes ``conv1``);
- ``offset="auto"`` / ``"center"`` on a Crop: computed when the net is built (see
  :mod:`fcnkit.netspec.crops`).

Naming (as Caffe's NetSpec): a top assigned to ``n.<name>`` (or ``n["name"]``) is the blob
``<name>`` and its layer is named ``<name>``; an in-place layer keeps its bottom's blob name
but takes the assigned name as its layer name. Unassigned tops and layers get automatic
names ``<Type><k>`` (``Convolution3``). Layers are written in the order they were created
(always a valid order: a layer's bottoms exist before it), keeping only layers that some
assigned top depends on.

Unlike Caffe's NetSpec, :meth:`NetSpec.to_proto` refuses (with
:class:`fcnkit.errors.NetDefinitionError`) what Caffe would silently get wrong: a blob
name used by two layers, a layer name used twice, one top assigned to two names, and a
layer that reads a blob after an in-place layer has overwritten it (the value it would
see in Caffe is the overwritten one).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from typing import Any, Iterator

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import NetDefinitionError
from fcnkit.netspec.deferred import Deferred, parse_deferred, resolve_deferred
from fcnkit.netspec.proto import assign, field_names, has_field, unknown_field_error

_SEQ = itertools.count()

#: Layer types whose parameter message is not named after the type.
_PARAM_FIELDS: dict[str, tuple[str, ...]] = {
    "Deconvolution": ("convolution_param",),
    "Im2col": ("convolution_param",),
    "SoftmaxWithLoss": ("softmax_param", "loss_param"),
    "InfogainLoss": ("infogain_loss_param", "loss_param"),
    "ContrastiveLoss": ("contrastive_loss_param", "loss_param"),
    "HingeLoss": ("hinge_loss_param", "loss_param"),
    "RNN": ("recurrent_param",),
    "LSTM": ("recurrent_param",),
}

_LAYER_FIELDS = set(field_names(caffe_pb2.LayerParameter()))
_RESERVED = {"bottom", "top", "type"}


def param_fields(type_name: str) -> tuple[str, ...]:
    """The LayerParameter ``*_param`` fields that hold the parameters of a layer type.

    ``"InnerProduct"`` -> ``("inner_product_param",)``; ``"Deconvolution"`` ->
    ``("convolution_param",)``; ``"SoftmaxWithLoss"`` -> ``("softmax_param",
    "loss_param")``; other ``*Loss`` types also get ``loss_param``; a type without a
    parameter message (ReLU has one, Split has none) -> ``()``.
    """
    if type_name in _PARAM_FIELDS:
        return _PARAM_FIELDS[type_name]
    key = type_name.lower()
    own = tuple(f for f in sorted(_LAYER_FIELDS)
                if f.endswith("_param") and f[:-len("_param")].replace("_", "") == key)
    if type_name.endswith("Loss") and "loss_param" not in own:
        own += ("loss_param",)
    return own


class Top:
    """One top (output blob) of a layer made with ``L``; pass it as a bottom to others.

    Attributes:
        fn: the :class:`LayerFn` that produces it.
        index: its position among the layer's tops.
    """

    __slots__ = ("fn", "index")

    def __init__(self, fn: "LayerFn", index: int):
        self.fn = fn
        self.index = index

    def __repr__(self) -> str:
        return f"<Top {self.index} of {self.fn.type_name} #{self.fn.seq}>"


class LayerFn:
    """One layer of a NetSpec before naming: type, bottoms, keyword parameters.

    Attributes:
        type_name: the Caffe type string.
        bottoms: the input tops.
        params: keyword arguments (without ``ntop``/``in_place``).
        in_place: the tops are the bottoms.
        tops: the output tops.
        seq: creation order (layers are written in this order).
        deferred: ``{field: Deferred}`` values resolved at build time.
    """

    def __init__(self, type_name: str, bottoms: tuple, params: dict[str, Any]):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", type_name):
            raise NetDefinitionError(f"'{type_name}' is not a layer type name")
        self.type_name = type_name
        self.seq = next(_SEQ)
        params = dict(params)
        ntop = params.pop("ntop", 1)
        self.in_place = bool(params.pop("in_place", False))
        if not isinstance(ntop, int) or ntop < 0:
            raise NetDefinitionError(f"{type_name}: ntop must be a non-negative int, got {ntop!r}")
        for i, b in enumerate(bottoms):
            if not isinstance(b, Top):
                raise NetDefinitionError(
                    f"{type_name}: bottom {i} is {b!r}, not a top made by L.<Type>(...); "
                    "layer parameters go in keyword arguments")
        if self.in_place and ntop > len(bottoms):
            raise NetDefinitionError(f"{type_name}: in_place=True needs a bottom for each of "
                                     f"its {ntop} top(s), got {len(bottoms)} bottom(s)")
        bad = _RESERVED & set(params)
        if bad:
            raise NetDefinitionError(f"{type_name}: '{sorted(bad)[0]}' is set by the DSL (bottoms "
                                     "are positional arguments, tops are named by assignment)")
        params = parse_deferred(type_name, params)
        self.bottoms = tuple(bottoms)
        self.params = params
        self.deferred = {k: v for k, v in params.items() if isinstance(v, Deferred)}
        self.tops = tuple(Top(self, i) for i in range(ntop))

    def __repr__(self) -> str:
        return f"<{self.type_name} #{self.seq}>"


class _Layers:
    """``L.Convolution(bottom, ...)``: make a layer of any Caffe type (see the module
    docstring). Types are not checked here; :func:`fcnkit.graph.load_net` checks them."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def make(*bottoms: Top, **params: Any):
            fn = LayerFn(type_name, bottoms, params)
            if len(fn.tops) == 1:
                return fn.tops[0]
            if not fn.tops:
                return fn
            return fn.tops

        make.__name__ = type_name
        make.__doc__ = f"A Caffe '{type_name}' layer; see fcnkit.netspec."
        return make


class _Params:
    """``P.Pooling.MAX``: enum values of Caffe's parameter messages, as in Caffe's net_spec
    (``P.<Type>`` is ``caffe_pb2.<Type>Parameter``). Enum names as strings work too."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(caffe_pb2, f"{name}Parameter")
        except AttributeError:
            raise AttributeError(f"caffe_pb2 has no message {name}Parameter") from None


L = _Layers()
P = _Params()


class NetSpec:
    """A net under construction: named tops, in assignment order.

    Assign tops as attributes (``n.conv1 = L.Convolution(...)``) or items
    (``n["db1_l0_conv"] = ...``, for generated names); read them back the same way.

    Args:
        name: the net's name (``NetParameter.name``).
    """

    def __init__(self, name: str = ""):
        object.__setattr__(self, "_tops", {})
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_sinks", [])

    # ---- naming ----------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getattr__(self, name: str) -> Top:
        tops = object.__getattribute__(self, "_tops")
        if name in tops:
            return tops[name]
        raise AttributeError(f"the NetSpec has no top named '{name}' (named so far: "
                             f"{', '.join(list(tops)[-8:]) or 'none'}{' ...' if len(tops) > 8 else ''})")

    def __setitem__(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise NetDefinitionError(f"a top name must be a non-empty string, got {name!r}")
        if isinstance(value, LayerFn) and not value.tops:
            raise NetDefinitionError(f"'{name}': a layer with ntop=0 has no top to name; give "
                                     "it name=... and pass it to NetSpec.add()")
        if not isinstance(value, Top):
            raise NetDefinitionError(f"'{name}' must be assigned a top made by L.<Type>(...), got "
                                     f"{value!r}" + (" (a tuple: unpack the tops of an ntop>1 "
                                                     "layer and assign them one by one)"
                                                     if isinstance(value, tuple) else ""))
        if name in self._tops and self._tops[name] is not value:
            raise NetDefinitionError(f"'{name}' is already assigned to another top; every blob "
                                     "and layer name is used once")
        for other, top in self._tops.items():
            if top is value and other != name:
                raise NetDefinitionError(f"this top is already named '{other}'; it cannot also be "
                                         f"named '{name}' (a blob has one name)")
        self._tops[name] = value

    def __getitem__(self, name: str) -> Top:
        return self._tops[name]

    def __contains__(self, name: str) -> bool:
        return name in self._tops

    def __iter__(self) -> Iterator[str]:
        return iter(self._tops)

    def add(self, fn: LayerFn) -> None:
        """Keep a layer without tops (``ntop=0``, e.g. Silence) in the net."""
        if not isinstance(fn, LayerFn):
            raise NetDefinitionError(f"NetSpec.add takes the result of L.<Type>(..., ntop=0), got {fn!r}")
        self._sinks.append(fn)

    @property
    def name(self) -> str:
        return self._name

    # ---- building --------------------------------------------------------------------

    def _functions(self) -> list[LayerFn]:
        seen: dict[int, LayerFn] = {}
        stack = [t.fn for t in self._tops.values()] + list(self._sinks)
        while stack:
            fn = stack.pop()
            if id(fn) in seen:
                continue
            seen[id(fn)] = fn
            stack.extend(b.fn for b in fn.bottoms)
        return sorted(seen.values(), key=lambda f: f.seq)

    def to_proto(self, *, resolve: bool = True) -> caffe_pb2.NetParameter:
        """The net as a V2 ``NetParameter``.

        Args:
            resolve: compute deferred values (``offset="auto"``/``"center"`` of Crop layers)
                with :mod:`fcnkit.analysis`; with False they are left unset.

        Raises:
            NetDefinitionError: naming conflicts, a bad parameter, a read after an in-place
                overwrite (see the module docstring).
            OffsetError, ShapeError: a deferred crop offset cannot be computed.
        """
        fns = self._functions()
        names = {id(t): n for n, t in self._tops.items()}
        auto = Counter()
        layer_names: dict[str, LayerFn] = {}
        blob_owner: dict[str, LayerFn] = {}       # blob name -> layer that created it
        current: dict[str, Top] = {}              # blob name -> top holding its latest value
        top_name: dict[int, str] = {}
        net = caffe_pb2.NetParameter()
        if self._name:
            net.name = self._name
        deferred: list[tuple[caffe_pb2.LayerParameter, LayerFn]] = []

        def autoname(type_name: str) -> str:
            while True:
                auto[type_name] += 1
                cand = f"{type_name}{auto[type_name]}"
                if cand not in self._tops and cand not in blob_owner and cand not in layer_names:
                    return cand

        for fn in fns:
            lp = net.layer.add()
            lp.type = fn.type_name
            label = fn.params.get("name") or (names.get(id(fn.tops[0])) if fn.tops else None)
            where_type = f"layer '{label}' ({fn.type_name})" if label else f"a {fn.type_name} layer"
            bottoms = _bottom_names(fn, top_name, current, where_type, net, fns)
            lp.bottom.extend(bottoms)
            if fn.in_place:
                tops = bottoms[:len(fn.tops)]
            else:
                tops = [names.get(id(t)) or autoname(fn.type_name) for t in fn.tops]
                for t in tops:
                    if t in blob_owner:
                        raise NetDefinitionError(
                            f"blob '{t}' is produced by two layers ({blob_owner[t].type_name} and "
                            f"{fn.type_name}); give the second another name or make it in_place")
            for t, top in zip(tops, fn.tops):
                top_name[id(top)] = t
                current[t] = top
                blob_owner.setdefault(t, fn)
            lp.top.extend(tops)
            lname = _layer_name(fn, names, tops, autoname)
            if lname in layer_names:
                raise NetDefinitionError(f"layer name '{lname}' is used twice ({layer_names[lname].type_name} "
                                         f"and {fn.type_name}); fcnkit names modules and weights after layers")
            layer_names[lname] = fn
            lp.name = lname
            _set_params(lp, fn)
            if fn.deferred:
                deferred.append((lp, fn))

        if resolve and deferred:
            resolve_deferred(net, deferred)
        return net


def _bottom_names(fn: LayerFn, top_name: dict[int, str], current: dict[str, Top], where_type: str,
                  net, fns) -> list[str]:
    """The blob names of ``fn``'s bottoms.

    Raises:
        NetDefinitionError: a bottom is read as it was before an in-place layer overwrote it.
    """
    bottoms = []
    for b in fn.bottoms:
        bname = top_name[id(b)]
        if current.get(bname) is not b:
            writer = current[bname].fn
            raise NetDefinitionError(
                f"{where_type} reads blob "
                f"'{bname}' as it was before the in-place {writer.type_name} layer "
                f"'{_layer_name_of(writer, net, fns)}' overwrote it; Caffe would give it the "
                "overwritten value. Read that layer's top instead, or make it not in place")
        bottoms.append(bname)
    return bottoms


def _layer_name(fn: LayerFn, names: dict[int, str], tops: list[str], autoname) -> str:
    """The layer's name: ``name=`` given, else its first top's assigned name, else its
    first top's blob name (Caffe's NetSpec), else an automatic ``Type<n>``."""
    explicit = fn.params.get("name")
    if explicit is not None:
        return explicit
    if fn.tops and id(fn.tops[0]) in names:
        return names[id(fn.tops[0])]
    if fn.tops and not fn.in_place:
        return tops[0]           # Caffe's NetSpec: the layer takes its top's name
    return autoname(fn.type_name)


def _layer_name_of(fn: LayerFn, net, fns) -> str:
    idx = [f.seq for f in fns].index(fn.seq)
    return net.layer[idx].name if idx < len(net.layer) else fn.type_name


def _set_params(lp: caffe_pb2.LayerParameter, fn: LayerFn) -> None:
    where = f"layer '{lp.name}' ({fn.type_name})"
    own = param_fields(fn.type_name)
    for key, value in fn.params.items():
        if key == "name" or key in fn.deferred:
            continue
        if key.endswith("_param") or (key in _LAYER_FIELDS and not any(
                has_field(getattr(lp, p), key) for p in own)):
            assign(lp, key, value, where)
            continue
        for p in own:
            sub = getattr(lp, p)
            if has_field(sub, key):
                assign(sub, key, value, where)
                break
        else:
            candidates = sorted(_LAYER_FIELDS) + [f for p in own for f in field_names(getattr(lp, p))]
            msgs = [getattr(lp, p).DESCRIPTOR.name for p in own] + ["LayerParameter"]
            raise unknown_field_error(where, msgs, key, candidates)
