"""Upgrade legacy nets (V0, V1, net-level inputs) to V2 NetParameter, in Caffe's order.

Source of every rule: src/caffe/util/upgrade_proto.cpp (UpgradeNetAsNeeded and the functions
it calls). The order is Caffe's:

1. V0 -> V1 (UpgradeV0Net): "padding" layers fold into the pad of the conv/pool layer that
   reads them, then each V0 layer's flat fields move to the typed *_param messages.
2. Data transformation (UpgradeNetDataTransformation): scale / mean_file / crop_size / mirror
   of Data, ImageData and WindowData layers move into transform_param.
3. V1 -> V2 (UpgradeV1Net): enum type -> type string, blobs_lr -> param.lr_mult,
   weight_decay -> param.decay_mult, param names / blob_share_mode -> ParamSpec.
4. Net inputs (UpgradeNetInput): net-level input + input_shape/input_dim -> an "Input" layer
   named "input", placed first.
5. BatchNorm (UpgradeNetBatchNorm): BatchNorm layers declaring 3 ParamSpecs get lr_mult and
   decay_mult 0 (the blobs are statistics, not learned).

fcnkit adds one step after Caffe's: ``pooling_param.ceil_mode`` (fork syntax, see
schemas/caffe.proto) becomes ``round_mode``.

Where Caffe refuses (LOG(FATAL)) fcnkit raises :class:`UpgradeError`; where Caffe only logs an
error and goes on, fcnkit goes on and records a note starting with "warning:".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.caffemodel_fields import is_repeated
from fcnkit.errors import UpgradeError

V1 = caffe_pb2.V1LayerParameter

# UpgradeV0LayerType: V0 type strings -> V1 enum.
V0_TYPES: dict[str, int] = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# UpgradeV1LayerType: V1 enum -> V2 type string (NONE -> "").
V1_TYPES: dict[int, str] = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# UpgradeV0LayerParameter: V0 field -> {V0 type (or "*" for any): (V1 sub-message, field)}.
# A sub-message of None means a field of the V1 layer itself.
_V0_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {"conv": ("convolution_param", "num_output"),
                   "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"),
                 "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler"),
                      "innerproduct": ("inner_product_param", "weight_filler")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler"),
                    "innerproduct": ("inner_product_param", "bias_filler")},
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"),
                   "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    # V0 PoolMethod and PoolingParameter.PoolMethod have the same numbers.
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {"data": ("data_param", "source"), "hdf5_data": ("hdf5_data_param", "source"),
               "images": ("image_data_param", "source"),
               "window_data": ("window_data_param", "source"),
               "infogain_loss": ("infogain_loss_param", "source")},
    "scale": {"*": ("transform_param", "scale")},
    "meanfile": {"*": ("transform_param", "mean_file")},
    "batchsize": {"data": ("data_param", "batch_size"),
                  "hdf5_data": ("hdf5_data_param", "batch_size"),
                  "images": ("image_data_param", "batch_size"),
                  "window_data": ("window_data_param", "batch_size")},
    "cropsize": {"*": ("transform_param", "crop_size")},
    "mirror": {"*": ("transform_param", "mirror")},
    "rand_skip": {"data": ("data_param", "rand_skip"),
                  "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", "")},
}
# V0 fields handled outside the table above.
_V0_STRUCTURAL = {"name", "type", "blobs", "blobs_lr", "weight_decay"}

# NetNeedsDataUpgrade / UpgradeNetDataTransformation.
_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# V1 fields that UpgradeV1LayerParameter does not copy by name.
_V1_SPECIAL = {"type", "param", "blob_share_mode", "blobs_lr", "weight_decay", "layer"}


@dataclass
class UpgradeResult:
    """What :func:`upgrade_net` did.

    Attributes:
        source_format: "V0", "V1" or "V2" as found before upgrading.
        notes: one human-readable line per upgrade step applied (warnings start "warning:").
        origin: for each layer of the upgraded ``net.layer``, the index of the layer of the
            input net (in ``layer`` or ``layers``, whichever it used) it came from, or None
            for a synthesized layer (the Input layer).
    """

    source_format: str
    notes: list[str] = field(default_factory=list)
    origin: list[int | None] = field(default_factory=list)


def detect_format(net: caffe_pb2.NetParameter) -> str:
    """Return "V0" (layers nesting a V0 layer), "V1" (layers) or "V2" (layer or no layers).

    Source: NetNeedsV0ToV1Upgrade / NetNeedsV1ToV2Upgrade in upgrade_proto.cpp. A net mixing
    ``layer`` and ``layers`` is reported by the generation of its ``layers``.
    """
    if any(l.HasField("layer") for l in net.layers):
        return "V0"
    if len(net.layers):
        return "V1"
    return "V2"


def upgrade_net(net: caffe_pb2.NetParameter, *, path: str | None = None,
                lines: Sequence[int | None] | None = None) -> UpgradeResult:
    """Upgrade ``net`` in place to V2 (only ``layer``, no net-level inputs).

    Args:
        net: the parsed net, any generation. Layers may or may not carry blobs.
        path: file name for error messages.
        lines: optional 1-based source line of each layer of the input net (aligned with
            ``net.layers`` for V0/V1 nets, ``net.layer`` for V2), used in error messages.

    Returns:
        An :class:`UpgradeResult`; ``origin`` maps upgraded layers to input layers.

    Raises:
        UpgradeError: the net mixes ``layer`` and ``layers``; a V0 layer has an unknown type or
            an invalid padding layer; net-level inputs have the wrong number of dims/shapes;
            ``ceil_mode`` contradicts ``round_mode``.
    """
    fmt = detect_format(net)
    result = UpgradeResult(source_format=fmt)
    n_input = len(net.layers) if fmt != "V2" else len(net.layer)
    origin: list[int | None] = list(range(n_input))
    line_of = (lambda i: lines[i] if lines is not None and i is not None and i < len(lines)
               else None)

    if len(net.layer) and len(net.layers):
        first_v1 = line_of(0)
        raise UpgradeError(
            f"the net mixes V2 `layer {{ }}` blocks ({len(net.layer)}) with V1 `layers {{ }}` "
            f"blocks ({len(net.layers)}); Caffe would silently drop the `layer` blocks. "
            "Write every layer in one generation (V2: `layer { type: \"Convolution\" ... }`)",
            path, first_v1)

    if fmt == "V0":
        origin = _upgrade_v0(net, result.notes, path, line_of)
    if _needs_data_upgrade(net):
        _upgrade_data_transformation(net, result.notes)
    if len(net.layers):
        _upgrade_v1(net, result.notes)
    if len(net.input):
        if _upgrade_input(net, result.notes, path):
            origin = [None] + origin
    _upgrade_batch_norm(net, result.notes)
    _upgrade_ceil_mode(net, result.notes, path, [line_of(o) for o in origin])
    result.origin = origin
    return result


# --- V0 -> V1 ---------------------------------------------------------------------------------

def _upgrade_v0(net, notes, path, line_of) -> list[int]:
    """UpgradeV0Net: fold padding layers, then convert each V0 layer. Returns kept indices."""
    kept: list[tuple[caffe_pb2.V1LayerParameter, int]] = []
    last_top: dict[str, int] = {name: -1 for name in net.input}
    folded = 0
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            copy = caffe_pb2.V1LayerParameter()
            copy.CopyFrom(conn)
            kept.append((copy, i))
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise UpgradeError(
                    f"V0 layer '{v0.name}' reads blob '{blob}', which no earlier layer and no "
                    "net input produces", path, line_of(i))
            src_index = last_top[blob]
            if src_index == -1 or net.layers[src_index].layer.type != "padding":
                continue
            src = net.layers[src_index]
            # Caffe CHECKs these; anything else has undefined behaviour there.
            if v0.type not in ("conv", "pool"):
                raise UpgradeError(
                    f"V0 padding layer '{src.layer.name}' feeds layer '{v0.name}' of type "
                    f"'{v0.type}'; a padding layer may only feed a conv or pool layer",
                    path, line_of(i))
            if len(conn.bottom) != 1 or len(src.bottom) != 1 or len(src.top) != 1:
                raise UpgradeError(
                    f"V0 padding layer '{src.layer.name}' and layer '{v0.name}' must each have "
                    "exactly one bottom (and the padding layer one top) to be folded",
                    path, line_of(i))
            target = kept[-1][0]
            target.layer.pad = src.layer.pad
            target.bottom[j] = src.bottom[0]
            folded += 1
        for blob in conn.top:
            last_top[blob] = i

    upgraded = []
    for conn, i in kept:
        layer = caffe_pb2.V1LayerParameter()
        _upgrade_v0_layer(conn, layer, notes, path, line_of(i))
        upgraded.append(layer)
    net.ClearField("layers")
    net.layers.extend(upgraded)
    notes.append(f"V0 -> V1: converted {len(upgraded)} V0 layers"
                 + (f", folded {folded} padding layer(s) into the pad of the next conv/pool"
                    if folded else ""))
    return [i for _, i in kept]


def _upgrade_v0_layer(conn, out, notes, path, line) -> None:
    """UpgradeV0LayerParameter: one V1 connection holding a V0 layer -> a typed V1 layer."""
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    v0_type = v0.type
    if v0.HasField("type"):
        if v0_type not in V0_TYPES:
            raise UpgradeError(
                f"V0 layer '{v0.name}' has type '{v0_type}', which Caffe's V0 upgrade does not "
                f"know (known: {', '.join(sorted(V0_TYPES))})", path, line)
        out.type = V0_TYPES[v0_type]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for fdesc, value in v0.ListFields():
        name = fdesc.name
        if name in _V0_STRUCTURAL:
            continue
        targets = _V0_FIELDS.get(name)
        if targets is None:
            notes.append(f"warning: V0 layer '{v0.name}': field '{name}' has no V1 equivalent "
                         "and is dropped (as Caffe does)")
            continue
        target = targets.get(v0_type) or targets.get("*")
        if target is None:
            notes.append(f"warning: V0 layer '{v0.name}': parameter '{name}' does not apply to "
                         f"layer type '{v0_type}' and is dropped (as Caffe does)")
            continue
        sub_name, field_name = target
        sub = getattr(out, sub_name)
        if not field_name:  # the whole message (hdf5_output_param)
            sub.CopyFrom(value)
            continue
        dest = sub.DESCRIPTOR.fields_by_name[field_name]
        if is_repeated(dest):
            getattr(sub, field_name).append(value)
        elif dest.message_type is not None:
            getattr(sub, field_name).CopyFrom(value)
        else:
            setattr(sub, field_name, value)


# --- data transformation ----------------------------------------------------------------------

def _needs_data_upgrade(net) -> bool:
    """NetNeedsDataUpgrade: a V1 data layer still holds transformation fields."""
    for layer in net.layers:
        param_name = _DATA_PARAMS.get(layer.type)
        if param_name and layer.HasField(param_name):
            sub = getattr(layer, param_name)
            if any(sub.HasField(f) for f in _TRANSFORM_FIELDS):
                return True
    return False


def _upgrade_data_transformation(net, notes) -> None:
    """UpgradeNetDataTransformation: move scale/mean_file/crop_size/mirror to transform_param."""
    moved = []
    for layer in net.layers:
        param_name = _DATA_PARAMS.get(layer.type)
        if not param_name or not layer.HasField(param_name):
            continue
        sub = getattr(layer, param_name)
        for f in _TRANSFORM_FIELDS:
            if sub.HasField(f):
                setattr(layer.transform_param, f, getattr(sub, f))
                sub.ClearField(f)
                moved.append(f"{layer.name}.{f}")
    notes.append("data transformation: moved " + ", ".join(moved) + " into transform_param")


# --- V1 -> V2 ---------------------------------------------------------------------------------

def _upgrade_v1(net, notes) -> None:
    """UpgradeV1Net: every V1 layer becomes a LayerParameter (layers -> layer)."""
    v2_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    upgraded = []
    for v1 in net.layers:
        layer = caffe_pb2.LayerParameter()
        for fdesc, value in v1.ListFields():
            name = fdesc.name
            if name in _V1_SPECIAL:
                continue
            if name not in v2_fields:  # defensive: every other V1 field exists in V2
                notes.append(f"warning: V1 layer '{v1.name}': field '{name}' has no V2 "
                             "equivalent and is dropped")
                continue
            if is_repeated(fdesc):
                getattr(layer, name).extend(value)
            elif fdesc.message_type is not None:
                getattr(layer, name).CopyFrom(value)
            else:
                setattr(layer, name, value)
        if v1.HasField("type"):
            layer.type = V1_TYPES.get(v1.type, "")
        # Parameter specs: names, share modes, lr and decay multipliers, index by index.
        specs = [(i, "name", v) for i, v in enumerate(v1.param)]
        specs += [(i, "share_mode", v) for i, v in enumerate(v1.blob_share_mode)]
        specs += [(i, "lr_mult", v) for i, v in enumerate(v1.blobs_lr)]
        specs += [(i, "decay_mult", v) for i, v in enumerate(v1.weight_decay)]
        for i, attr, value in specs:
            while len(layer.param) <= i:
                layer.param.add()
            setattr(layer.param[i], attr, value)
        if v1.HasField("layer"):
            notes.append(f"warning: V1 layer '{v1.name}' still holds a V0 layer; ignored "
                         "(as Caffe does)")
        upgraded.append(layer)
    net.ClearField("layers")
    net.ClearField("layer")
    net.layer.extend(upgraded)
    notes.append(f"V1 -> V2: converted {len(upgraded)} layers (enum types -> type strings, "
                 "blobs_lr/weight_decay -> param lr_mult/decay_mult)")


# --- net inputs -------------------------------------------------------------------------------

def _upgrade_input(net, notes, path) -> bool:
    """UpgradeNetInput. Returns True when an Input layer was inserted first."""
    inputs = list(net.input)
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    added = False
    if has_shape or has_dim:
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        if has_shape:
            if len(net.input_shape) != len(inputs):
                raise UpgradeError(
                    f"the net declares {len(inputs)} input(s) {inputs} but "
                    f"{len(net.input_shape)} input_shape(s); give one input_shape per input",
                    path)
            shapes = [list(s.dim) for s in net.input_shape]
        else:
            if len(net.input_dim) != 4 * len(inputs):
                raise UpgradeError(
                    f"the net declares {len(inputs)} input(s) {inputs} but "
                    f"{len(net.input_dim)} input_dim value(s); give exactly 4 "
                    "(num, channels, height, width) per input", path)
            dims = list(net.input_dim)
            shapes = [dims[4 * i:4 * i + 4] for i in range(len(inputs))]
        for name, dims in zip(inputs, shapes):
            layer.top.append(name)
            layer.input_param.shape.add().dim.extend(dims)
        layers = [layer] + list(net.layer)
        net.ClearField("layer")
        net.layer.extend(layers)
        added = True
        desc = ", ".join(f"{n} {tuple(d)}" for n, d in zip(inputs, shapes))
        notes.append(f"net input -> Input layer 'input' placed first ({desc})")
    else:
        # Legacy caffemodels carry input names without shapes; Caffe just drops them.
        notes.append(f"net input {inputs} has no input_shape/input_dim; dropped (as Caffe does)")
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")
    return added


# --- BatchNorm, ceil_mode ---------------------------------------------------------------------

def _upgrade_batch_norm(net, notes) -> None:
    """UpgradeNetBatchNorm: BatchNorm with 3 ParamSpecs -> lr_mult = decay_mult = 0."""
    names = []
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            if all(p.lr_mult == 0 and p.decay_mult == 0 and p.HasField("lr_mult")
                   and p.HasField("decay_mult") for p in layer.param):
                continue  # already in the upgraded form; nothing to note
            for p in layer.param:
                p.lr_mult = 0.0
                p.decay_mult = 0.0
            names.append(layer.name)
    if names:
        notes.append("BatchNorm: set lr_mult and decay_mult to 0 on the statistics of "
                     + ", ".join(repr(n) for n in names))


def _upgrade_ceil_mode(net, notes, path, lines) -> None:
    """Fork field pooling_param.ceil_mode -> round_mode (true: CEIL, false: FLOOR)."""
    pp = caffe_pb2.PoolingParameter
    for i, layer in enumerate(net.layer):
        if not layer.HasField("pooling_param"):
            continue
        pool = layer.pooling_param
        if not pool.HasField("ceil_mode"):
            continue
        wanted = pp.CEIL if pool.ceil_mode else pp.FLOOR
        if pool.HasField("round_mode") and pool.round_mode != wanted:
            raise UpgradeError(
                f"layer '{layer.name}': pooling_param has ceil_mode: "
                f"{str(pool.ceil_mode).lower()} and round_mode: "
                f"{pp.RoundMode.Name(pool.round_mode)}, which contradict each other; "
                "keep only round_mode", path, lines[i] if i < len(lines) else None)
        pool.round_mode = wanted
        pool.ClearField("ceil_mode")
        notes.append(f"layer '{layer.name}': pooling_param ceil_mode: "
                     f"{'true' if wanted == pp.CEIL else 'false'} -> round_mode: "
                     f"{pp.RoundMode.Name(wanted)}")


# --- solver -----------------------------------------------------------------------------------

_SOLVER_TYPES = {
    caffe_pb2.SolverParameter.SGD: "SGD", caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad", caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta", caffe_pb2.SolverParameter.ADAM: "Adam",
}


def upgrade_solver(solver: caffe_pb2.SolverParameter, path: str | None = None) -> list[str]:
    """UpgradeSolverAsNeeded: legacy enum ``solver_type`` -> string ``type``, in place.

    Returns:
        Notes of what changed (empty when nothing did).

    Raises:
        UpgradeError: both ``solver_type`` and ``type`` are set (Caffe refuses that too).
    """
    if not solver.HasField("solver_type"):
        return []
    if solver.HasField("type"):
        raise UpgradeError("the solver sets both the legacy `solver_type` (enum) and `type` "
                           "(string); keep only `type`", path)
    solver.type = _SOLVER_TYPES[solver.solver_type]
    solver.ClearField("solver_type")
    return [f"solver_type -> type: \"{solver.type}\""]
