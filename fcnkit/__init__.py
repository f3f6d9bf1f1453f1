"""fcnkit: a Caffe-style declarative network compiler with FCN surgery tooling.

Prototxt/caffemodel (every format generation) -> checked graph -> shapes, scale factors
and crop offsets -> PyTorch (torch.fx) -> ONNX / TensorRT, plus fc->conv net surgery and
an 8-band road-segmentation model zoo.

Top-level helpers import lazily so that ``import fcnkit`` stays light (no torch).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load", "load_net", "compile_net"]


def load(directory):
    """Load a compiled-model directory (see :func:`fcnkit.compile.load`)."""
    from fcnkit.compile import load as _load

    return _load(directory)


def load_net(source, state=None, **kwargs):
    """Load and check a net (see :func:`fcnkit.graph.load_net`)."""
    from fcnkit.graph import load_net as _load_net

    return _load_net(source, state, **kwargs)


def compile_net(net, weights=None, input_shapes=None, **kwargs):
    """Compile a net to torch (see :func:`fcnkit.compile.compile_net`)."""
    from fcnkit.compile import compile_net as _compile

    return _compile(net, weights, input_shapes, **kwargs)
