"""Resolving a MODEL argument (prototxt, compiled-model directory or zoo name) into a
compiled net at the tile size and batch wanted for deployment.

A compiled torch module is built for fixed input shapes (pooling divisors, crop windows
and flatten sizes are resolved at compile time), so deploying at another tile size
recompiles the net and carries the weights over (:func:`reshape`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fcnkit.errors import InputError

Shape = tuple[int, ...]


@dataclass
class ModelSource:
    """A compiled net plus what deployment records about where it came from.

    Attributes:
        compiled: the :class:`fcnkit.compile.CompiledNet` (deploy mode: no loss layers).
        kind: ``"prototxt"``, ``"compiled"`` (a ``fcnkit compile -o`` directory) or ``"zoo"``.
        name: what the user named: prototxt file name, directory name or zoo model name.
        source: the prototxt file name the net was read from (for ONNX metadata).
        bands: input band names (zoo models), else None.
        classes: class names (zoo models), else None.
    """

    compiled: Any
    kind: str
    name: str
    source: str
    bands: list[str] | None = None
    classes: list[str] | None = None
    info: Any = field(default=None, repr=False)


def zoo_names() -> list[str]:
    """Names of the zoo models, or [] while ``fcnkit.zoo`` is not available."""
    try:
        from fcnkit import zoo
    except ImportError:
        return []
    names = getattr(zoo, "names", None)
    return list(names()) if callable(names) else []


def _info_get(info: Any, *keys: str) -> Any:
    for k in keys:
        if isinstance(info, Mapping) and info.get(k) is not None:
            return info[k]
        v = getattr(info, k, None)
        if v is not None:
            return v
    return None


def _as_names(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        return [str(getattr(v, "name", v)) for v in value]
    except TypeError:
        return None


def declared_input_shapes(net, overrides: Mapping[str | None, Shape] | None = None) -> dict[str, Shape]:
    """The net's input shapes as declared in the prototxt (or overridden), keyed by Caffe
    blob name.

    Raises:
        ShapeError: an input's shape is neither declared nor given.
        InputError: an override names no input.
    """
    from fcnkit.analysis import input_shapes

    return {net.blob_name[b]: tuple(s) for b, s in input_shapes(net, overrides).items()}


def deploy_shapes(current: Mapping[str, Shape], tile: tuple[int, int] | None = None,
                  batch: int | None = None) -> dict[str, Shape]:
    """Input shapes for deployment: every 4-D (N, C, H, W) input gets batch ``batch`` (when
    given) and spatial size ``tile`` = (H, W) (when given); other inputs keep their shape.

    Raises:
        InputError: a tile is given but the net has no 4-D input.
    """
    out: dict[str, Shape] = {}
    four_d = [k for k, s in current.items() if len(s) == 4]
    if tile is not None and not four_d:
        raise InputError(f"--tile needs an N,C,H,W image input, but the net's inputs are "
                         f"{', '.join(f'{k} {tuple(v)}' for k, v in current.items())}")
    for name, shape in current.items():
        s = list(shape)
        if len(s) == 4:
            if batch is not None:
                s[0] = batch
            if tile is not None:
                s[2], s[3] = tile
        out[name] = tuple(int(d) for d in s)
    return out


def reshape(compiled, shapes: Mapping[str, Shape]):
    """The same net and weights compiled for other input shapes.

    Returns ``compiled`` itself when the shapes are unchanged.

    Raises:
        ShapeError: the net cannot take these shapes (e.g. a tile smaller than the net's
            receptive field, or a different size for an InnerProduct layer).
    """
    from fcnkit.compile import compile_net

    want = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
    have = {k: tuple(v) for k, v in compiled.input_shapes.items()}
    if all(have.get(k) == v for k, v in want.items()):
        return compiled
    new = compile_net(compiled.net, None, want, deploy=compiled.deploy)
    state = compiled.module.state_dict()
    new.module.load_state_dict(state, strict=True)
    new.module.train(compiled.module.training)
    new.weights = compiled.weights
    new.load_report = compiled.load_report
    return new


def is_model_path(model: str | Path) -> bool:
    """Whether ``model`` names a file or directory (as opposed to a zoo name)."""
    return Path(model).exists()


def load_model(model: str | Path, *, weights: str | Path | None = None,
               tile: tuple[int, int] | None = None, batch: int | None = None,
               input_shapes: Mapping[str | None, Shape] | None = None,
               allow_missing_weights: bool = False,
               stages: Sequence[str] = (), classes: int | None = None) -> ModelSource:
    """Load MODEL for deployment and compile it at (batch, tile).

    Args:
        model: a prototxt path, a compiled-model directory (``fcnkit compile -o DIR``) or the
            name of a zoo model (``fcnkit.zoo.names()``).
        weights: a caffemodel for a prototxt or a zoo model (e.g. one trained from the
            zoo's train_val net); without one a zoo model uses its bundled weight set
            (``fcnkit.zoo.bundled``, e.g. tiramisu56_8band) if it has one, else starts from
            its fillers (layers without a filler are 0). A compiled directory carries its
            own weights.
        tile: (H, W) of the image input(s) in pixels; default: as declared / compiled.
        batch: batch size to compile for (default: as declared, usually 1).
        input_shapes: explicit input shapes ({blob name or None for the first input:
            (N, C, H, W)}), e.g. for nets whose Data layers declare none; ``tile`` and
            ``batch`` are applied on top. A prototxt is loaded in phase TEST with
            ``stages``, without its loss layers and labels, and a named input that no
            layer produces is created (:mod:`fcnkit.graph.prepare`, DIGITS templates).
        allow_missing_weights: see :func:`fcnkit.compile.compile_net` (``weights`` from which
            no layer loads, or lacking a layer that would be all zeros, is an error without it).
        classes: num_output of a final classifier the prototxt leaves unset.

    Raises:
        InputError: the path does not exist and is no zoo name, or weights are given for a
            compiled directory (which carries its own).
        CaffeFormatError, NetDefinitionError, ShapeError, WeightsError: from loading/compiling.
    """
    from fcnkit.compile import compile_net

    path = Path(model)
    if path.is_dir():
        return _load_compiled_dir(path, weights, tile, batch, input_shapes)
    if path.is_file():
        from fcnkit.graph import load_net

        net = load_net(path, stages=stages, deploy=True, classes=classes, input_shapes=input_shapes)
        shapes = deploy_shapes(declared_input_shapes(net, input_shapes), tile, batch)
        compiled = compile_net(net, weights, shapes, deploy=True,
                               allow_missing_weights=allow_missing_weights)
        return ModelSource(compiled, "prototxt", path.name, path.name)
    names = zoo_names()
    if str(model) in names:
        from fcnkit import zoo
        from fcnkit.graph import load_net

        from fcnkit.zoo.bundled import default_weights

        param = zoo.build(str(model))
        info = zoo.info(str(model)) if hasattr(zoo, "info") else None
        weights = default_weights(model, weights)
        net = load_net(param)
        shapes = deploy_shapes(declared_input_shapes(net, input_shapes), tile, batch)
        compiled = compile_net(net, weights, shapes, deploy=True,
                               allow_missing_weights=allow_missing_weights)
        bands = _as_names(_info_get(info, "band_names", "bands"))
        classes = _as_names(_info_get(info, "class_names", "classes", "labels"))
        return ModelSource(compiled, "zoo", str(model), f"zoo:{model}", bands, classes, info)
    hint = f"; zoo models: {', '.join(names)}" if names else ""
    raise InputError(f"MODEL '{model}' is neither a prototxt, a compiled model directory nor a "
                     f"zoo model name{hint}")


def _load_compiled_dir(path: Path, weights, tile, batch, input_shapes) -> ModelSource:
    """:func:`load_model` for a compiled-model directory, reshaped to (batch, tile)."""
    from fcnkit.compile import is_compiled_dir, load
    from fcnkit.compile.store import read_meta

    if not is_compiled_dir(path):
        raise InputError(f"{path} is a directory but not a compiled fcnkit model (no fcnkit.json); "
                         "create one with `fcnkit compile NET -o DIR`")
    if weights is not None:
        raise InputError(f"{path} is a compiled model directory with its own weights; "
                         "--weights applies to a prototxt or a zoo model name only")
    compiled = load(path)
    source = read_meta(path).get("source")  # validated by load() above
    src = Path(source if isinstance(source, str) and source else path.name).name
    base = dict(compiled.input_shapes)
    for k, v in (input_shapes or {}).items():
        key = compiled.inputs[0] if k is None else k
        if key not in base:
            raise InputError(f"--input-shape names '{key}', but the model's inputs are {list(base)}")
        base[key] = tuple(v)
    compiled = reshape(compiled, deploy_shapes(base, tile, batch))
    return ModelSource(compiled, "compiled", path.name, src)


def fill_untrained(compiled, seed: int = 0) -> list[str]:
    """Give an untrained net numerically useful weights, in place, for benchmarks and parity
    tests: every all-zero weight tensor (a Caffe layer without ``weight_filler`` is filled
    with 0) gets seeded He-normal values (std sqrt(2 / fan_in)), and every BatchNorm
    variance that is 0 (Caffe's initial statistics, which make BatchNorm divide by
    sqrt(eps) and overflow deep nets) becomes 1, with its scale factor set to 1 where it was
    0, so that the Caffe blobs written from the net (``mean * s``, ``var * s``, ``s``;
    :func:`fcnkit.compile.export_blobs`) hold these statistics too (with ``s = 0`` Caffe and
    OpenCV read the statistics as 0). Trained or filler-initialised weights are left alone.

    Returns:
        The names of the tensors changed.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    changed = []
    with torch.no_grad():
        for name, p in compiled.module.named_parameters():
            if p.ndim > 1 and not bool(p.detach().abs().amax() > 0):
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                changed.append(name)
        for mname, mod in compiled.module.named_modules():
            var = getattr(mod, "_buffers", {}).get("running_var")
            if var is None or not var.dtype.is_floating_point or bool(var.amax() > 0):
                continue
            var.fill_(1.0)
            changed.append(f"{mname}.running_var" if mname else "running_var")
            s = mod._buffers.get("scale_factor")
            if s is not None and s.numel() == 1 and not bool(s.abs().amax() > 0):
                s.fill_(1.0)
                changed.append(f"{mname}.scale_factor" if mname else "scale_factor")
    return changed
