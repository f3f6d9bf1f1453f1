"""The model zoo: 8-band road-segmentation nets generated with the NetSpec DSL.

=========================  =================================================================
name                       model
=========================  =================================================================
``fcn_alexnet_8band``      FCN-AlexNet (NVIDIA DIGITS 5 article), crop 18
``fcn32s_8band``           FCN-32s (Long et al. 2015, VGG-16), crop 19
``fcn16s_8band``           FCN-16s, crops 5, 27
``fcn8s_8band``            FCN-8s, crops 5, 9, 31
``tiramisu56_8band``       FC-DenseNet56 (Jégou et al. arXiv:1611.09326), k = 12
``tiramisu67_8band``       FC-DenseNet67, k = 16
``tiramisu103_8band``      FC-DenseNet103, k = 16
``tiramisu*_8band_f96``    the same with 96 first-layer filters (SpaceNet roads article)
=========================  =================================================================

Every model takes 8 WorldView-3 bands at 512x512 and gives 2 classes (background, road)
by default; :func:`build` takes other band and class counts. Each exists as a ``deploy``
net (Input ``data`` -> Softmax ``prob``) and a ``train_val`` net (Inputs ``data`` and
``label`` -> SoftmaxWithLoss ``loss`` ignoring label 255, Accuracy ``accuracy`` in TEST;
Dropout in TRAIN; BatchNorm on batch statistics in TRAIN, stored ones in TEST).

The prototxts in the repository's ``prototxt/`` folder are :func:`write_all`'s output
(``fcnkit zoo write``); they carry a header saying so, and a test regenerates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from fcnkit.caffe import caffe_pb2, format_prototxt
from fcnkit.errors import InputError
from fcnkit.zoo import fcn, tiramisu
from fcnkit.zoo.common import (INPUT_HW, PHASES, ROAD_CLASSES, WORLDVIEW3_BANDS,
                               WORLDVIEW3_WAVELENGTHS_NM, check_phase, names_or_count)

__all__ = ["names", "build", "info", "render", "filename", "write_all", "diff_dir", "ZooModel",
           "PHASES"]


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry.

    Attributes:
        name: the zoo name (also the net's name).
        family: "fcn" or "tiramisu".
        title: the model's common name (FCN-8s, FC-DenseNet103 ...).
        summary: one line on what it is.
        source: where the architecture comes from (paper, Caffe file).
        module: the fcnkit module that builds it (for the generated header).
        make: ``make(name, bands, classes, train) -> NetSpec``.
        crops: the expected crop offsets, as documented by the source (informative).
    """

    name: str
    family: str
    title: str
    summary: str
    source: str
    module: str
    make: Callable = field(repr=False)
    crops: tuple[int, ...] = ()


def _fcn_entries() -> list[ZooModel]:
    fcn_src = ("Long, Shelhamer, Darrell, Fully Convolutional Networks for Semantic "
               "Segmentation, CVPR 2015; fcn.berkeleyvision.org voc-fcn{s}s")
    out = [ZooModel(
        "fcn_alexnet_8band", "fcn", "FCN-AlexNet",
        "AlexNet made fully convolutional (conv1 pad 100, fc6/fc7 as convolutions), score, "
        "group-wise bilinear upscore (kernel 63, stride 32), crop 18",
        "NVIDIA DIGITS 5 image segmentation article and examples/semantic-segmentation/"
        "fcn_alexnet.prototxt; Long et al. CVPR 2015",
        "fcnkit/zoo/fcn.py", lambda name, b, c, t: fcn.fcn_alexnet(name, b, c, t), (18,))]
    for stride, crops in ((32, (19,)), (16, (5, 27)), (8, (5, 9, 31))):
        out.append(ZooModel(
            f"fcn{stride}s_8band", "fcn", f"FCN-{stride}s",
            f"VGG-16 FCN with output stride {stride}"
            + ("" if stride == 32 else ", skip scores from " + ("pool4" if stride == 16 else "pool4 and pool3")),
            fcn_src.format(s=stride), "fcnkit/zoo/fcn.py",
            (lambda s: lambda name, b, c, t: fcn.fcn_vgg16(name, b, c, t, s))(stride), crops))
    return out


def _tiramisu_entries() -> list[ZooModel]:
    src = ("Jégou et al., The One Hundred Layers Tiramisu: Fully Convolutional DenseNets for "
           "Semantic Segmentation, arXiv:1611.09326; wiring as bfortuner/pytorch_tiramisu")
    out = []
    for depth, cfg in tiramisu.CONFIGS.items():
        for f96 in (False, True):
            c = tiramisu.TiramisuConfig(cfg.down, cfg.bottleneck, cfg.up, cfg.growth,
                                        96 if f96 else cfg.first_filters)
            blocks = (f"{len(cfg.down)} blocks of {cfg.down[0]} layers"
                      if len(set(cfg.down)) == 1 else
                      "blocks " + ",".join(map(str, cfg.down)) + f" | {cfg.bottleneck} | "
                      + ",".join(map(str, cfg.up)))
            out.append(ZooModel(
                f"tiramisu{depth}_8band" + ("_f96" if f96 else ""), "tiramisu",
                f"FC-DenseNet{depth}",
                f"growth rate {cfg.growth}, {blocks}, first convolution {c.first_filters} filters"
                + (" (the SpaceNet roads article's 8-band variant)" if f96 else ""),
                src + ("; 96 first-layer filters: NVIDIA SpaceNet roads article" if f96 else ""),
                "fcnkit/zoo/tiramisu.py",
                (lambda cc: lambda name, b, k, t: tiramisu.tiramisu(name, cc, b, k, t))(c)))
    return out


_MODELS: dict[str, ZooModel] = {m.name: m for m in _fcn_entries() + _tiramisu_entries()}


def names() -> list[str]:
    """The zoo's model names, FCNs first, then FC-DenseNets by depth."""
    return list(_MODELS)


def model(name: str) -> ZooModel:
    """The zoo entry ``name``.

    Raises:
        InputError: no such model (the message lists the names).
    """
    try:
        return _MODELS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_MODELS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"no zoo model named '{name}'{hint}; models: {', '.join(_MODELS)}") from None


def build(name: str, *, phase: str = "deploy", bands: int | Sequence[str] | None = None,
          classes: int | Sequence[str] | None = None) -> caffe_pb2.NetParameter:
    """Build a zoo model as a V2 NetParameter.

    Args:
        name: a name from :func:`names`.
        phase: "deploy" (Input -> Softmax ``prob``) or "train_val" (Inputs ``data`` and
            ``label`` -> SoftmaxWithLoss ``loss``, Accuracy ``accuracy``).
        bands: input channels, as a count or a list of band names (default: the 8
            WorldView-3 bands).
        classes: output classes, as a count or a list of names (default: background, road).

    Returns:
        The NetParameter (crop offsets computed), input ``data`` of shape
        (1, bands, 512, 512).

    Raises:
        InputError: unknown model or phase, bad bands/classes.
        OffsetError: a crop offset cannot be computed (a bug in the model definition).
    """
    m = model(name)
    check_phase(phase)
    nb, _ = names_or_count(bands, WORLDVIEW3_BANDS, "bands")
    nc, _ = names_or_count(classes, ROAD_CLASSES, "classes")
    return m.make(name, nb, nc, phase == "train_val").to_proto()


def info(name: str) -> dict:
    """What a zoo model is, without building it.

    Returns:
        A dict with ``name``, ``family``, ``title``, ``summary``, ``source``,
        ``input_shape`` (1, 8, 512, 512), ``bands`` (8), ``band_names`` (WorldView-3:
        coastal, blue, green, yellow, red, red_edge, nir1, nir2),
        ``band_wavelengths_nm``, ``classes`` (2), ``class_names`` (background, road),
        ``ignore_label`` (255), ``phases`` and ``files`` ({phase: prototxt file name}).

    Raises:
        InputError: unknown model.
    """
    from fcnkit.zoo.common import IGNORE_LABEL

    m = model(name)
    return {
        "name": m.name, "family": m.family, "title": m.title, "summary": m.summary,
        "source": m.source,
        "input_shape": (1, len(WORLDVIEW3_BANDS), *INPUT_HW),
        "bands": len(WORLDVIEW3_BANDS), "band_names": list(WORLDVIEW3_BANDS),
        "band_wavelengths_nm": list(WORLDVIEW3_WAVELENGTHS_NM),
        "classes": len(ROAD_CLASSES), "class_names": list(ROAD_CLASSES),
        "ignore_label": IGNORE_LABEL,
        "phases": list(PHASES), "files": {p: filename(name, p) for p in PHASES},
    }


def filename(name: str, phase: str = "deploy") -> str:
    """``<name>.<phase>.prototxt``, the file :func:`write_all` writes."""
    check_phase(phase)
    return f"{name}.{phase}.prototxt"


def header(name: str, phase: str) -> str:
    """The comment block at the top of a generated prototxt (no date or version, so the
    files regenerate byte for byte)."""
    m = model(name)
    inf = info(name)
    shape = "x".join(map(str, inf["input_shape"]))
    lines = [
        f"{m.name} ({phase}): {m.title} for {inf['bands']}-band road segmentation.",
        f"{m.summary}.",
        f"Architecture: {m.source}.",
        f"Input 'data' {shape}, bands: {', '.join(inf['band_names'])}; classes: "
        f"{', '.join(f'{i} {c}' for i, c in enumerate(inf['class_names']))}"
        + (f"; label {inf['ignore_label']} is ignored." if phase == "train_val" else "."),
        f"GENERATED by `fcnkit zoo write` from {m.module} (fcnkit.zoo.build({m.name!r}, "
        f"phase={phase!r})); do not edit by hand: change the Python and regenerate.",
    ]
    return "\n".join(lines)


def render(name: str, phase: str = "deploy") -> str:
    """The prototxt text of a zoo model with its header (what :func:`write_all` writes).

    Raises:
        InputError: unknown model or phase.
    """
    return format_prototxt(build(name, phase=phase), header=header(name, phase))


def write_all(directory: str | Path, models: Sequence[str] | None = None) -> list[Path]:
    """Write ``<name>.<phase>.prototxt`` for every (or the given) model and phase into
    ``directory`` (created if needed), each file atomically. Other files in the folder
    are left alone.

    Returns:
        The paths written, in order.

    Raises:
        InputError: an unknown model name.
        OSError: a file cannot be written.
    """
    from fcnkit.atomic import write_text

    directory = Path(directory)
    todo = [model(n).name for n in (models or names())]
    texts = {filename(n, p): render(n, p) for n in todo for p in PHASES}
    out = []
    for fname, text in texts.items():
        write_text(directory / fname, text)
        out.append(directory / fname)
    return out


def diff_dir(directory: str | Path) -> list[str]:
    """Compare ``directory`` with a fresh generation of the whole zoo.

    Returns:
        One line per difference (a missing, differing or extra ``*.prototxt`` file);
        empty when the folder holds exactly the zoo's files, byte for byte.
    """
    directory = Path(directory)
    expected = {filename(n, p): render(n, p) for n in names() for p in PHASES}
    problems = []
    for fname, text in expected.items():
        path = directory / fname
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"differs: {path}")
    for path in sorted(directory.glob("*.prototxt")):
        if path.name not in expected:
            problems.append(f"not in the zoo: {path}")
    return problems
