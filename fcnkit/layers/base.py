"""The contract of a layer type: what fcnkit knows about one Caffe layer type.

Each supported Caffe type is one subclass of :class:`Layer` in its own module under
``fcnkit/layers/``, registered with :func:`fcnkit.layers.register`. A subclass answers, for
its type: normalised parameters (``setup``), top shapes from bottom shapes
(``output_shapes``), the coordinate map (``coord_map``), the sliding window and receptive
field (``window``, ``receptive_field``), the parameters (Caffe's per-layer ``blobs``) and
their Caffe shapes (``param_names``, ``param_shapes``), their fillers, parameter and FLOP
counts, the torch module that computes it (``build_module``, torch imported lazily so that
analysis never needs torch), and its export form (``export_module``, ``export_fused``,
``dynamic_export_module``, ``static_hw_reason``). docs/layer_contract.md lists who asks what.

Shapes are tuples of ints in Caffe's axis order: (N, C, H, W) for images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from fcnkit.errors import NetDefinitionError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

Shape = tuple[int, ...]

#: Largest number of elements fcnkit accepts for one blob (2**40, ~4 TB of float32). A
#: larger declared shape is almost certainly a typo; refusing it early gives a clear
#: message instead of an allocation failure deep inside numpy or torch.
MAX_BLOB_ELEMENTS = 2**40


# --------------------------------------------------------------------------------------
# Coordinate maps
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoordMap:
    """An affine map of spatial coordinates from a bottom blob to a top blob, per axis.

    ``x_top = factor * x_bottom + offset`` for each spatial axis (y, x), in pixels of the
    top blob. For convolution and pooling ``factor = 1/s`` and
    ``offset = (p - (k_eff - 1)/2) / s``; for deconvolution ``factor = s`` and
    ``offset = (k_eff - 1)/2 - p`` (Long et al., FCN; NVIDIA DIGITS 5 article, Table 2).
    These per-layer maps are those of Caffe's python/caffe/coord_map.py (``coord_map``:
    conv ``(1/s, (p - (k_eff - 1)/2) / s)``, deconv ``(s, (k_eff - 1)/2 - p)``); only the
    crop offset differs in sign: coord_map.py's ``crop`` writes ``-b`` for the offset ``b``
    of the map between the two blobs, fcnkit states the offset directly.

    Values are exact fractions.
    """

    factor: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))
    offset: tuple[Fraction, Fraction] = (Fraction(0), Fraction(0))

    @staticmethod
    def make(factor: Sequence, offset: Sequence) -> "CoordMap":
        """Build from per-axis numbers (ints, Fractions or exact decimal strings)."""
        return CoordMap(tuple(Fraction(f) for f in factor), tuple(Fraction(o) for o in offset))

    def then(self, after: "CoordMap") -> "CoordMap":
        """The map of ``self`` followed by ``after`` (``after`` is the upper layer).

        ``x2 = F2 (F1 x0 + O1) + O2 = (F2 F1) x0 + (F2 O1 + O2)``.
        """
        return CoordMap(
            tuple(a * b for a, b in zip(after.factor, self.factor)),
            tuple(fa * o + oa for fa, o, oa in zip(after.factor, self.offset, after.offset)),
        )

    def inverse(self) -> "CoordMap":
        """The map from the top back to the bottom: ``x0 = (x1 - O) / F``."""
        return CoordMap(tuple(1 / f for f in self.factor),
                        tuple(-o / f for f, o in zip(self.factor, self.offset)))

    def is_identity(self) -> bool:
        return all(f == 1 for f in self.factor) and all(o == 0 for o in self.offset)


IDENTITY = CoordMap()


@dataclass(frozen=True)
class Window:
    """The sliding window of a convolution-like layer, per spatial axis (y, x), in pixels.

    Attributes:
        kernel: the kernel size as declared (None for global pooling: the whole map).
        extent: the effective (dilated) kernel size ``d (k - 1) + 1``, None with ``kernel``.
        stride: the stride.
        pad: the padding at the start of each axis.
    """

    kernel: tuple[int, int] | None
    extent: tuple[int, int] | None
    stride: tuple[int, int]
    pad: tuple[int, int]


class NoCoordMap(Exception):
    """Raised by :meth:`Layer.coord_map` when the layer has no spatial coordinate map
    (InnerProduct, global pooling, Flatten, ...). ``str(exc)`` is the reason."""


# --------------------------------------------------------------------------------------
# Helpers for parameter normalisation
# --------------------------------------------------------------------------------------

def prod(shape: Sequence[int]) -> int:
    """Number of elements of a shape (1 for a scalar shape ``()``)."""
    return int(math.prod(int(d) for d in shape))


def canonical_axis(axis: int, ndim: int, layer: "Layer") -> int:
    """Caffe's Blob::CanonicalAxisIndex: negative axes count from the end.

    Raises:
        ShapeError: axis out of range for a blob of ``ndim`` axes.
    """
    if not -ndim <= axis < ndim:
        raise layer.error(f"axis {axis} is out of range for a {ndim}-D bottom", ShapeError)
    return axis + ndim if axis < 0 else axis


def spatial_pair(scalar_repeated: Sequence[int], h: int | None, w: int | None,
                 default: int | None, what: str, layer: "Layer") -> tuple[int, int]:
    """Resolve Caffe's ``kernel_size``/``kernel_h``/``kernel_w`` style parameters for 2-D.

    ``scalar_repeated`` is the repeated field (0, 1 or 2 values); ``h``/``w`` the explicit
    per-axis fields (None when unset). Rules of Caffe's BaseConvolutionLayer/PoolingLayer
    LayerSetUp: either the repeated field or both *_h and *_w, never both.

    Raises:
        NetDefinitionError: both forms given, only one of *_h/*_w, or too many values.
    """
    if h is not None or w is not None:
        if scalar_repeated:
            raise layer.error(f"{what} given both as {what} and as {what}_h/{what}_w; use one form")
        if h is None or w is None:
            raise layer.error(f"{what}_h and {what}_w must be given together")
        return int(h), int(w)
    vals = list(scalar_repeated)
    if len(vals) == 0:
        if default is None:
            raise layer.error(f"{what} is required")
        return default, default
    if len(vals) == 1:
        return int(vals[0]), int(vals[0])
    if len(vals) == 2:
        return int(vals[0]), int(vals[1])
    raise layer.error(f"{what} has {len(vals)} values; fcnkit supports 2-D spatial layers "
                      "(1 value, or 2 for (h, w))")


# --------------------------------------------------------------------------------------
# The layer base class
# --------------------------------------------------------------------------------------

class Layer:
    """One Caffe layer of a given type, with its parameters normalised.

    Subclasses set the class attributes and override the methods below. Instances are
    created by the graph for every layer of a net (``Layer(param, line)``), so ``setup``
    must check the parameters and raise :class:`NetDefinitionError` (via :meth:`error`)
    for bad values.

    Attributes:
        type: the Caffe type string this class handles (e.g. ``"Convolution"``).
        role: ``"input"`` (produces net inputs), ``"compute"``, ``"loss"``, ``"metric"``,
            ``"alias"`` (its tops are its bottom, compiled as no module: Split) or
            ``"sink"`` (no tops, computes nothing, compiled as no module: Silence).
        bottoms: allowed number of bottoms, as (min, max); max None = unbounded.
        tops: allowed number of tops, as (min, max).
        min_bottom_rank: fewest axes every bottom must have (Caffe's CHECKs: 4 for Pooling);
            fewer is a ShapeError before ``output_shapes`` is called.
        param: the LayerParameter (V2) of this layer.
        line: the 1-based line of the layer in its prototxt, or None.
    """

    type: ClassVar[str] = ""
    role: ClassVar[str] = "compute"
    bottoms: ClassVar[tuple[int, int | None]] = (1, 1)
    tops: ClassVar[tuple[int, int | None]] = (1, 1)
    min_bottom_rank: ClassVar[int] = 0

    def __init__(self, param: Any, line: int | None = None, path: str | None = None):
        self.param = param
        self.name: str = param.name
        self.line = line
        self.path = path
        self.setup()

    # ---- errors --------------------------------------------------------------------

    def where(self) -> str:
        """``net.prototxt: layer 'conv1' (Convolution, line 12)`` (the file when the net
        came from one) — used at the start of messages."""
        loc = f", line {self.line}" if self.line else ""
        file = f"{self.path}: " if self.path else ""
        return f"{file}layer '{self.name}' ({self.type}{loc})"

    def error(self, message: str, cls: type[NetDefinitionError] = NetDefinitionError) -> NetDefinitionError:
        """An error naming this layer; ``raise layer.error("...")``."""
        return cls(f"{self.where()}: {message}")

    # ---- parameters ----------------------------------------------------------------

    def setup(self) -> None:
        """Normalise and check this type's parameters (override)."""

    @property
    def phase_dependent(self) -> bool:
        """True when the torch module behaves differently in train() and eval()."""
        return False

    def loss_weights(self) -> list[float]:
        """Weight of each top in the net's objective (Caffe Layer::SetLossWeights).

        ``loss_weight`` as given (once per top); when unset, 1 for the first top of a
        loss layer (role ``"loss"``, LossLayer::LayerSetUp) and 0 for every other top.
        The top blobs hold the unweighted values, as in Caffe.

        Raises:
            NetDefinitionError: ``loss_weight`` is given, but not once per top.
        """
        n = len(self.param.top)
        given = [float(w) for w in self.param.loss_weight]
        if given:
            if len(given) != n:
                raise self.error(f"loss_weight is given {len(given)} times for {n} tops; give "
                                 "it once per top or not at all")
            return given
        if self.role == "loss" and n:
            return [1.0] + [0.0] * (n - 1)
        return [0.0] * n

    # ---- shapes --------------------------------------------------------------------

    def output_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        """Top shapes from bottom shapes, with Caffe's exact rounding rules.

        Raises:
            ShapeError: the bottoms do not fit this layer.
        """
        raise NotImplementedError

    def param_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        """Caffe shapes of this layer's parameters, the ``blobs[i]`` of its LayerParameter
        (weights, biases, statistics; pycaffe's ``net.params[layer]``, as opposed to the
        activations, ``net.blobs``)."""
        return []

    def param_names(self) -> list[str]:
        """Torch names of ``blobs[i]`` (``weight``, ``bias``, ``running_mean``, ...)."""
        return []

    def learnable(self) -> list[bool]:
        """Whether each blob is a learnable parameter (BatchNorm statistics are not)."""
        return [True] * len(self.param_names())

    def fillers(self) -> list[Any]:
        """FillerParameter for each blob (None = constant 0, Caffe's default)."""
        return [None] * len(self.param_names())

    # ---- coordinate map ------------------------------------------------------------

    def coord_map(self) -> CoordMap:
        """The spatial coordinate map from each mappable bottom to the tops.

        Raises:
            NoCoordMap: the layer has none (the reason is the exception's message).
        """
        raise NoCoordMap(f"{self.type} has no spatial coordinate map")

    def coord_bottoms(self) -> list[int]:
        """Indices of the bottoms the coordinate map applies to (Crop: only bottom 0)."""
        n = len(self.param.bottom)
        return list(range(n))

    def window(self) -> Window | None:
        """The layer's sliding window (kernel, stride, pad) for the offset table and the
        receptive field, or None for a layer without one (element-wise layers, Crop...)."""
        return None

    def receptive_field(self, field: tuple[float, float], jump: tuple[float, float]
                        ) -> tuple[tuple[float, float], tuple[float, float]]:
        """The receptive field (input pixels) and jump (input pixels between adjacent
        outputs) of the top, from those of the bottom, per axis (y, x).

        Default, for a layer with a :meth:`window` (convolution, pooling):
        ``rf += (k_eff - 1) * jump``, ``jump *= s`` (Araujo et al., "Computing Receptive
        Fields of Convolutional Neural Networks", Distill 2019, eq. 1-2); a layer without a
        window keeps both. Only called for layers that have a coordinate map.
        """
        w = self.window()
        if w is None or w.extent is None:
            return field, jump
        return (tuple(field[a] + (w.extent[a] - 1) * jump[a] for a in range(2)),
                tuple(jump[a] * w.stride[a] for a in range(2)))

    # ---- net surgery ---------------------------------------------------------------
    # What net surgery (fcnkit/surgery) may do with a layer: it asks these, never the
    # Caffe type string (issue 14), so a new layer type opts in here and in its own file.

    #: A learned spatial filter over (N, C, H, W) with weights (num_output, C/group, kh, kw):
    #: it can score classes (Long et al. 2015's score layers), take new input bands (conv1
    #: adaptation) and be padded (FCN's conv1 pad 100). Caffe's Convolution.
    spatial_filter: ClassVar[bool] = False
    #: A transposed spatial filter that upsamples (FCN's learned/bilinear upsampling),
    #: weights (C_in, num_output/group, kh, kw). Caffe's Deconvolution.
    upsampling_filter: ClassVar[bool] = False
    #: Fully connected (weights (num_output, C*H*W), or transposed): equivalent to a
    #: Convolution whose kernel is its input's H x W (Long et al. 2015, section 3.1).
    #: Caffe's InnerProduct; see :meth:`stores_transposed`.
    fully_connected: ClassVar[bool] = False
    #: Reshapes axes [axis, end_axis] into one without touching the data (Caffe's Flatten).
    flattens: ClassVar[bool] = False
    #: A spatial pooling that can downsample (a skip source of the FCN head; Caffe's Pooling).
    pools: ClassVar[bool] = False
    #: Declares its tops' shapes in ``input_param.shape`` (Caffe's Input), so surgery can
    #: rewrite an input's N, C, H, W.
    declares_input_shape: ClassVar[bool] = False
    #: The field of the LayerParameter (a message) whose ``num_output`` sets this layer's
    #: output channels ("convolution_param", "inner_product_param"), or None. A net's final
    #: classifier is the last layer that has one; DIGITS templates leave its num_output
    #: unset for the tool to fill from the dataset (``--classes``).
    num_output_param: ClassVar[str | None] = None

    @classmethod
    def unsupported_reason(cls, param: Any) -> str | None:
        """Why the LayerParameter ``param`` cannot be compiled although its type is
        registered (a Python layer inside a net), or None. Such a layer is listed with the
        unsupported types when a net is loaded."""
        return None

    @classmethod
    def scores_classes(cls) -> bool:
        """True for a layer whose ``num_output`` can be a class count of a classifier:
        a spatial filter or a fully connected layer (fcn's score layers)."""
        return cls.spatial_filter or cls.fully_connected

    @classmethod
    def stores_transposed(cls, param: Any) -> bool:
        """True when the LayerParameter ``param`` stores this layer's weight blob
        transposed relative to its PyTorch layout (InnerProduct ``transpose: true``)."""
        return False

    # ---- crops ---------------------------------------------------------------------

    #: True for a layer that cuts bottom 0 to the grid of bottom 1 at offsets that fcnkit
    #: can compute from the coordinate maps (Caffe's Crop); see :meth:`coord_map_at`.
    crops_to_reference: ClassVar[bool] = False

    def coord_map_at(self, offset: Sequence[Fraction | int]) -> CoordMap:
        """The coordinate map this layer would have with the (y, x) crop ``offset``
        (pixels; exact fractions allowed), for layers that ``crops_to_reference``."""
        raise NotImplementedError(f"{self.type} does not crop to a reference")

    # ---- cost ----------------------------------------------------------------------

    def param_count(self, bottom_shapes: list[Shape]) -> int:
        """Number of learnable parameters (elements of learnable blobs)."""
        return sum(prod(s) for s, l in zip(self.param_shapes(bottom_shapes), self.learnable()) if l)

    def flops(self, bottom_shapes: list[Shape], top_shapes: list[Shape]) -> int:
        """Floating-point operations of one forward pass, 2 per multiply-add.

        Only layers with multiply-adds (convolutions, inner products, ...) count, the
        convention of torch.utils.flop_counter.FlopCounterMode.
        """
        return 0

    # ---- torch ---------------------------------------------------------------------

    def build_module(self, bottom_shapes: list[Shape]) -> "torch.nn.Module":
        """The torch module computing this layer; ``forward(*bottoms)`` returns one tensor
        per top (a tuple when there are several). Parameters are named after
        :meth:`param_names`."""
        raise NotImplementedError(f"{self.type} cannot be compiled to torch")

    def params_to_torch(self, blobs: list[np.ndarray], bottom_shapes: list[Shape]) -> dict[str, np.ndarray]:
        """Caffe blobs (as stored; legacy 4-D shapes allowed) -> {torch name: array}.

        The default reshapes ``blobs[i]`` to :meth:`param_shapes` (the element counts must
        match, Caffe compares legacy shapes right-aligned) and names it by
        :meth:`param_names`. Override for layouts that differ (InnerProduct transpose,
        BatchNorm scale factor).

        Raises:
            WeightsError: blob count or element count differs.
        """
        from fcnkit.errors import WeightsError

        names = self.param_names()
        shapes = self.param_shapes(bottom_shapes)
        if len(blobs) != len(names):
            raise WeightsError(f"{self.where()}: the weights file has {len(blobs)} blobs, "
                               f"the layer expects {len(names)} ({', '.join(names) or 'none'})")
        out = {}
        for name, blob, shape in zip(names, blobs, shapes):
            if blob.size != prod(shape):
                raise WeightsError(
                    f"{self.where()}: blob '{name}' has shape {tuple(blob.shape)} "
                    f"({blob.size} values) in the weights file, the net needs {shape} "
                    f"({prod(shape)} values)")
            out[name] = np.asarray(blob, dtype=np.float32).reshape(shape)
        return out

    def torch_to_params(self, tensors: dict[str, np.ndarray], bottom_shapes: list[Shape]) -> list[np.ndarray]:
        """Inverse of :meth:`params_to_torch`: arrays in Caffe's blob shapes, in order."""
        return [np.asarray(tensors[n], dtype=np.float32).reshape(s)
                for n, s in zip(self.param_names(), self.param_shapes(bottom_shapes))]

    # ---- export --------------------------------------------------------------------

    #: What the layer's top holds for a user: ``"scores"`` or ``"probabilities"`` (Softmax).
    output_kind: ClassVar[str] = "scores"

    def export_module(self, module: "torch.nn.Module", bottom_shapes: list[Shape]
                      ) -> "torch.nn.Module | None":
        """A drop-in for the compiled ``module`` whose ONNX form is exactly Caffe's, or
        None when the compiled module exports as it is (the default)."""
        return None

    def export_fused(self, module: "torch.nn.Module", after: "Layer",
                     after_module: "torch.nn.Module") -> "torch.nn.Module | None":
        """One module for this layer followed by ``after`` (its bottom's only user, one
        bottom), computing both in one ONNX op, or None when they do not fuse (default)."""
        return None

    def dynamic_export_module(self, module: "torch.nn.Module", bottom_shapes: list[Shape]
                              ) -> "torch.nn.Module | None":
        """A drop-in for the compiled ``module`` whose ONNX form computes every size from
        its inputs' shapes (Shape ops), used instead of :meth:`export_module` for an export
        with dynamic H and W; None when :meth:`export_module`'s form (or the compiled
        module) already works at any size (the default). Asked only when
        :meth:`static_hw_reason` is None."""
        return None

    def inference_fused(self, module: "torch.nn.Module", after: "Layer",
                        after_module: "torch.nn.Module") -> "torch.nn.Module | None":
        """One module computing this layer followed by ``after`` (its top's only reader,
        one bottom) exactly, for inference (eval mode, where no intermediate blob is
        kept), or None when they do not fuse (the default). ``module`` may be what an
        earlier call returned for this layer (a chain of fusions)."""
        return None

    def inference_packed(self, module: "torch.nn.Module") -> "torch.nn.Module | None":
        """A drop-in for ``module`` (this layer's inference module, possibly fused with the
        layers after it by :meth:`inference_fused`) that runs channels-last float32 CPU
        inputs on weights prepacked once for oneDNN, or None (the default). It must compute
        the same values and fall back to ``module``'s own computation for any input it
        cannot serve."""
        return None

    def inplace_activation(self, module: "torch.nn.Module") -> "torch.nn.Module | None":
        """A module applying this element-wise layer in place on its input (the caller
        owns that tensor: a layer fusing it holds the only reference), or None when it has
        no in-place form (the default)."""
        return None

    def static_hw_reason(self, module: "torch.nn.Module") -> str | None:
        """Why the compiled ``module`` cannot be exported with dynamic H and W (a phrase
        that follows the layer's description), or None when it can (the default)."""
        return None


def check_bottoms(layer: Layer, bottom_shapes: list[Shape], same: bool = False) -> None:
    """Raise ShapeError if ``same`` and the bottom shapes differ."""
    if same and any(s != bottom_shapes[0] for s in bottom_shapes[1:]):
        shapes = ", ".join(f"{b}={s}" for b, s in zip(layer.param.bottom, bottom_shapes))
        raise layer.error(f"bottoms must have equal shapes, got {shapes}", ShapeError)
