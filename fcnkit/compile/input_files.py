"""The ``--input`` files of ``fcnkit run`` / ``fcnkit verify``: ``.npy`` arrays or image
files (PNG, JPEG, TIFF, preprocessed as pycaffe does: :mod:`fcnkit.compile.image_input`),
checked against the net's declared inputs before any layer runs.

Caffe's Reshape refuses an input whose rank or channel count differs from what the net
declares, so fcnkit does too, naming the file, its shape and the declared shape; N, H and W
may differ (a layer that cannot take them, e.g. InnerProduct, says so when shapes are
inferred). An array in H x W x C or C x H x W order gets a hint to transpose it or add the
batch axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fcnkit.compile.image_input import Preprocess, image_kind, load_image, preprocess_image
from fcnkit.errors import InputError
from fcnkit.npyio import is_npy, npy_shape, read_npy


def declared_inputs(net) -> dict[str, tuple[int, ...] | None]:
    """{input blob name: declared shape (N, C, H, W, ...) or None (a Data layer that
    declares none)}, in net order."""
    out: dict[str, tuple[int, ...] | None] = {}
    for node in net.input_layers():
        for tname, shape in zip(node.param.top, node.layer.declared_shapes()):
            out[tname] = None if shape is None else tuple(int(d) for d in shape)
    return out


def npy_input_shapes(specs: Sequence[str]) -> dict[str | None, tuple[int, ...]]:
    """{input name (None for an unnamed spec): shape} of the ``.npy`` files among ``--input``
    specs, read from their headers only; images and missing files are left to
    :func:`load_inputs`, which reports them. Used to create an input the net leaves to the
    tool (DIGITS templates' deploy stage)."""
    shapes: dict[str | None, tuple[int, ...]] = {}
    for spec in specs:
        name, path = (None, spec) if Path(spec).exists() or "=" not in spec else spec.split("=", 1)
        if is_npy(path):
            shapes[name] = npy_shape(path)
    return shapes


def _split_specs(specs: Sequence[str], input_names: Sequence[str]) -> list[tuple[str, Path]]:
    """``x.npy`` (the first input, or ``data``) or ``name=x.npy`` per input.

    Raises:
        InputError: several specs without names, or a file that does not exist.
    """
    out = []
    for spec in specs:
        if "=" in spec and not Path(spec).exists():
            name, _, path = spec.partition("=")
        else:
            if len(specs) > 1:
                raise InputError("with several --input options each must be name=file")
            name, path = (input_names[0] if input_names else "data"), spec
        p = Path(path)
        if not p.is_file():
            raise InputError(f"input file {p} does not exist")
        out.append((name, p))
    return out


def load_inputs(specs: Sequence[str], net, preprocess: Preprocess | None = None) -> dict[str, np.ndarray]:
    """{input blob name: float32 array} from ``--input`` specs, each checked against the
    net's declared input (:func:`check_input_shape`).

    A ``.npy`` file is used as it is (no pickles: :mod:`fcnkit.npyio`); an image file
    (PNG/JPEG/TIFF, recognised by its first bytes) is read and preprocessed for the
    declared (N, C, H, W) with ``preprocess`` (:mod:`fcnkit.compile.image_input`) and gets
    N = 1.

    Raises:
        InputError: see :func:`_split_specs`, :func:`check_input_shape`; an image for an
            input without a declared 4-D shape; an unreadable image; LimitError: an array
            larger than the memory limit.
    """
    declared = declared_inputs(net)
    names = [net.blob_name[b] for b in net.inputs]
    arrays = {}
    for name, path in _split_specs(specs, names):
        shape = declared.get(name)
        if image_kind(path) is not None:
            if shape is None or len(shape) != 4:
                raise InputError(f"{path}: an image needs a net input with a declared N,C,H,W "
                                 f"shape; input '{name}' declares {shape or 'none'}")
            img = load_image(path, color=shape[1] != 1)
            arrays[name] = preprocess_image(img, shape, preprocess or Preprocess(), str(path))
            continue
        arr = np.ascontiguousarray(read_npy(path), dtype=np.float32)
        if shape is not None:
            check_input_shape(arr.shape, shape, str(path), name)
        arrays[name] = arr
    return arrays


def check_input_shape(got: Sequence[int], declared: Sequence[int], where: str, name: str) -> None:
    """Refuse an array whose rank or channel count (axis 1) differs from the declared input
    shape (Caffe's Reshape would); N and the spatial axes may differ.

    Raises:
        InputError: naming ``where`` (the file), its shape, the input and its declared shape,
            with a transpose / batch-axis hint for H x W x C, C x H x W and N x H x W x C.
    """
    got, declared = tuple(int(d) for d in got), tuple(int(d) for d in declared)
    if len(got) == len(declared) and (len(got) < 2 or got[1] == declared[1]):
        return
    what = "rank" if len(got) != len(declared) else "channel count"
    msg = (f"{where}: array of shape {got} does not fit input '{name}', declared "
           f"{declared} ({what} differs")
    if len(got) != len(declared):
        msg += f": {len(got)} axes, the net needs {len(declared)}"
    else:
        msg += f": {got[1]} channels, the net takes {declared[1]}"
    hint = _layout_hint(got, declared)
    raise InputError(msg + ")" + (f"; {hint}" if hint else ""))


def _layout_hint(got: tuple[int, ...], declared: tuple[int, ...]) -> str:
    """How to turn a common image layout into N x C x H x W, or ''."""
    if len(declared) != 4:
        return ""
    c = declared[1]
    if len(got) == 3 and got[2] == c and got[0] != c:
        return "it looks like H x W x C: use x.transpose(2, 0, 1)[np.newaxis]"
    if len(got) == 3 and got[0] == c:
        return "it looks like C x H x W: add the batch axis, x[np.newaxis]"
    if len(got) == 2 and c == 1:
        return "it looks like H x W: use x[np.newaxis, np.newaxis]"
    if len(got) == 4 and got[3] == c and got[1] != c:
        return "it looks like N x H x W x C: use x.transpose(0, 3, 1, 2)"
    return ""

