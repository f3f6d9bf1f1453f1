"""fcnkit: a Caffe-style declarative network compiler with FCN surgery tooling.

Prototxt/caffemodel (every format generation) -> checked graph -> shapes, scale factors
and crop offsets -> PyTorch (torch.fx) -> ONNX / TensorRT, plus fc->conv net surgery and
an 8-band road-segmentation model zoo.

Top-level helpers import lazily so that ``import fcnkit`` stays light (no torch).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load", "load_net", "compile_net"]


def load(directory):
    """Load a compiled-model directory written by ``fcnkit compile NET -o DIR``.

    Returns a :class:`fcnkit.compile.CompiledNet` whose ``module`` maps (N, C, H, W) float32
    inputs to {Caffe blob name: tensor}. Raises :class:`fcnkit.errors.InputError` (not such
    a directory) or :class:`fcnkit.errors.WeightsError` (damaged weights); see
    :func:`fcnkit.compile.load`.
    """
    from fcnkit.compile import load as _load

    return _load(directory)


def load_net(source, state=None, **kwargs):
    """Load and check a net: a prototxt path, prototxt text source or NetParameter,
    upgraded to V2 and filtered by ``state`` (a :class:`fcnkit.graph.NetState`; default
    Caffe's TEST phase, level 0). Returns a :class:`fcnkit.graph.Net`; raises
    :class:`fcnkit.errors.CaffeFormatError` or :class:`fcnkit.errors.NetDefinitionError`
    naming the file, line and layer. See :func:`fcnkit.graph.load_net`.
    """
    from fcnkit.graph import load_net as _load_net

    return _load_net(source, state, **kwargs)


def compile_net(net, weights=None, input_shapes=None, **kwargs):
    """Compile a checked net (with a caffemodel path, a CaffeModel, {layer: [arrays]} or
    None for fillers) into a torch.fx module; ``input_shapes`` overrides the declared
    (N, C, H, W) input shapes. Returns a :class:`fcnkit.compile.CompiledNet`; raises
    :class:`fcnkit.errors.ShapeError` or :class:`fcnkit.errors.WeightsError`. See
    :func:`fcnkit.compile.compile_net`.
    """
    from fcnkit.compile import compile_net as _compile

    return _compile(net, weights, input_shapes, **kwargs)
