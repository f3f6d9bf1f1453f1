"""What every zoo model shares: the 8-band input, the two classes, and the net ends for
the deploy and train_val phases."""

from __future__ import annotations

from typing import Sequence

from fcnkit.errors import InputError
from fcnkit.netspec import L, NetSpec, Top

#: The eight multispectral bands of DigitalGlobe WorldView-3, in file order, with their
#: centre wavelengths in nm (SpaceNet roads article, section 2: coastal blue, blue,
#: green, yellow, red, red edge, near infrared 1 and 2 at 427, 478, 546, 608, 659, 724,
#: 833 and 949 nm).
WORLDVIEW3_BANDS: tuple[str, ...] = ("coastal", "blue", "green", "yellow", "red", "red_edge",
                                     "nir1", "nir2")
WORLDVIEW3_WAVELENGTHS_NM: tuple[int, ...] = (427, 478, 546, 608, 659, 724, 833, 949)
#: The road segmentation classes: label 0 background, 1 road.
ROAD_CLASSES: tuple[str, ...] = ("background", "road")
#: Label value ignored by the loss and the accuracy (Caffe/FCN convention).
IGNORE_LABEL = 255
#: Input height and width of the generated prototxts (pixels); the SpaceNet roads
#: article trains at 512x512. Fully convolutional nets take other sizes at run time.
INPUT_HW: tuple[int, int] = (512, 512)

PHASES = ("deploy", "train_val")


def names_or_count(value: int | Sequence[str] | None, default: Sequence[str], what: str
                   ) -> tuple[int, tuple[str, ...] | None]:
    """``bands``/``classes`` arguments: None (the defaults), a count, or a list of names.

    Returns:
        (count, names or None when only a count was given).

    Raises:
        InputError: not a positive count or a non-empty list of distinct names.
    """
    if value is None:
        return len(default), tuple(default)
    if isinstance(value, bool) or (isinstance(value, int) and value <= 0):
        raise InputError(f"{what} must be a positive number or a list of names, got {value!r}")
    if isinstance(value, int):
        return value, (tuple(default) if value == len(default) else None)
    if isinstance(value, str):
        raise InputError(f"{what} must be a number or a list of names, got the string {value!r}")
    names = tuple(str(v) for v in value)
    if not names or len(set(names)) != len(names):
        raise InputError(f"{what} must be a non-empty list of distinct names, got {list(value)!r}")
    return len(names), names


def check_phase(phase: str) -> str:
    """Raises InputError unless ``phase`` is "deploy" or "train_val"."""
    if phase not in PHASES:
        raise InputError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    return phase


def inputs(n: NetSpec, bands: int, train: bool, hw: tuple[int, int] = INPUT_HW) -> Top:
    """``data`` (1, bands, H, W) and, for train_val, ``label`` (1, 1, H, W): Input layers,
    fed by the caller (fcnkit's data pipeline or pycaffe)."""
    n.data = L.Input(shape=dict(dim=[1, bands, *hw]))
    if train:
        n.label = L.Input(shape=dict(dim=[1, 1, *hw]))
    return n.data


def outputs(n: NetSpec, score: Top, train: bool) -> None:
    """The net's end. Deploy: ``prob`` = Softmax over the class axis. train_val:
    ``loss`` = SoftmaxWithLoss(score, label), normalised by the number of labelled pixels
    (VALID), ignoring label 255; ``accuracy`` (TEST phase only), ignoring 255 too."""
    if not train:
        n.prob = L.Softmax(score, axis=1)
        return
    n.loss = L.SoftmaxWithLoss(score, n.label, loss_param=dict(ignore_label=IGNORE_LABEL,
                                                               normalization="VALID"))
    n.accuracy = L.Accuracy(score, n.label, ignore_label=IGNORE_LABEL,
                            include=dict(phase="TEST"))
