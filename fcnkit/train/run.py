"""``fcnkit train`` as a library call: solver.prototxt + a road dataset -> snapshots.

Puts together the solver (:mod:`fcnkit.train.solver`), its nets (:mod:`fcnkit.train.nets`),
the dataset (:mod:`fcnkit.train.dataset`, :mod:`fcnkit.train.chips`) and the loop
(:mod:`fcnkit.train.loop`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fcnkit.errors import InputError
from fcnkit.train.loop import TestNet, Trainer, TrainOptions, TrainResult


@dataclass
class DataOptions:
    """Where the scenes are and how they become batches.

    Attributes:
        images, labels: SpaceNet-style folders (or ``pairs``: a CSV of image,label).
        bands: 1-based band indices in model input order.
        chip: chip side (pixels); batch: chips per batch (None: the data layer's
            batch_size, else 4); width: full road width for GeoJSON labels ("4m", "13px").
        split: the split file (default ``<snapshot_prefix>.split.json``).
        percentiles: stretch percentiles; workers: DataLoader workers.
        speed_bins: CRESI speed-bin CSV: multi-channel speed labels and loss
            (fcnkit.train.speed).
    """

    images: Path | None = None
    labels: Path | None = None
    pairs: Path | None = None
    bands: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    chip: int = 256
    batch: int | None = None
    width: str = "4m"
    split: Path | None = None
    percentiles: tuple[float, float] = (2.0, 90.0)
    workers: int = 2
    speed_bins: Path | None = None


def declared_batch(param) -> int | None:
    """batch_size of the net's first data layer (Data, ImageData, HDF5Data, Input), or None."""
    for layer in param.layer:
        for field in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param"):
            if layer.HasField(field) and getattr(layer, field).batch_size:
                return int(getattr(layer, field).batch_size)
        if layer.HasField("input_param") and layer.input_param.shape and layer.input_param.shape[0].dim:
            return int(layer.input_param.shape[0].dim[0])
    return None


def build_sources(data: DataOptions, prefix: str, seed: int, batch: int):
    """(train source, val source or None, preprocess dict, split) for a dataset.

    Raises:
        InputError: see find_pairs / read_pairs_csv / split_scenes / compute_stretch / Chips.
    """
    from fcnkit.train.chips import Chips, ChipSource
    from fcnkit.train.dataset import compute_stretch, find_pairs, read_pairs_csv, split_scenes

    if data.pairs is not None:
        pairs = read_pairs_csv(data.pairs)
    elif data.images is not None and data.labels is not None:
        pairs = find_pairs(data.images, data.labels)
    else:
        raise InputError("give the dataset: --images DIR and --labels DIR, or --pairs CSV")
    split = split_scenes(pairs, data.split or Path(f"{prefix}.split.json"), seed)
    if not split["train"]:
        raise InputError(f"the dataset has {len(pairs)} scene(s): too few for a training split")
    pre = compute_stretch([p.image for p in split["train"]], list(data.bands), data.percentiles)
    speed = data.speed_bins
    train = ChipSource(Chips(split["train"], pre, data.chip, data.width, speed_table=speed),
                       batch, seed, True, data.workers)
    val = (ChipSource(Chips(split["val"], pre, data.chip, data.width, speed_table=speed),
                      batch, seed, False, 0)
           if split["val"] else None)
    return train, val, pre, split


def train_from_solver(solver_path, data: DataOptions | None = None, *, weights=None, resume=None,
                      options: TrainOptions | None = None, max_iter: int | None = None,
                      source=None, val_source=None, preprocess: dict | None = None,
                      loss: str = "softmax", apls: bool = False) -> TrainResult:
    """Train the net of a solver.prototxt as Caffe would (see fcnkit.train.loop).

    Args:
        solver_path: the solver prototxt.
        data: the road dataset (or give ``source``/``val_source`` batch sources directly).
        weights: a caffemodel to initialise from (layers matched by name).
        resume: a .solverstate to continue from.
        options: :class:`fcnkit.train.loop.TrainOptions`.
        max_iter: overrides the solver's max_iter.
        loss: softmax (the net's loss layer), bce-dice or dice-focal (fcnkit.train.losses).
        apls: at each test, also score the mean APLS of whole validation scenes
            (:mod:`fcnkit.train.apls_eval`; needs ``data``'s validation scenes).

    Returns:
        :class:`fcnkit.train.loop.TrainResult`.

    Raises:
        InputError, CaffeFormatError, NetDefinitionError, WeightsError, OutputError.
    """
    from fcnkit.caffe.solver import read_solver
    from fcnkit.train.distributed import init_from_env
    from fcnkit.train.nets import compile_phase, test_net_params, train_net_param
    from fcnkit.train.solver import check_solver

    where = str(solver_path)
    options = options or TrainOptions()
    options.device = init_from_env(options.device)
    solver = read_solver(solver_path)
    if max_iter is not None:
        solver.max_iter = max_iter
    check_solver(solver, where)
    net_param, net_path = train_net_param(solver, where)
    seed = int(solver.random_seed) if solver.random_seed >= 0 else 0
    torch.manual_seed(seed)
    prefix = solver.snapshot_prefix or str(Path(where).with_suffix(""))
    if source is None:
        if data is None:
            raise InputError("give a dataset (--images/--labels or --pairs)")
        batch = data.batch or declared_batch(net_param) or 4
        source, val_source, preprocess, _ = build_sources(data, prefix, seed, batch)
    train_state = solver.train_state if solver.HasField("train_state") else None
    train = compile_phase(net_param, net_path, "TRAIN", train_state, source.shapes, weights, seed)
    set_loss = _loss_setter(data, loss, source)
    set_loss(train)
    tests = []
    if val_source is not None:
        for k, (param, path) in enumerate(test_net_params(solver, where)):
            state = solver.test_state[k] if k < len(solver.test_state) else None
            compiled = compile_phase(param, path, "TEST", state, val_source.shapes, None, seed)
            set_loss(compiled)
            tests.append(TestNet(compiled, val_source, int(solver.test_iter[k])))
    if apls:
        options.apls = _scene_apls(val_source, tests)
    text = json.dumps(preprocess, indent=1) if preprocess is not None else None
    trainer = Trainer(solver, train, net_param, source, tests, options, text, prefix, where)
    return trainer.solve(resume)


def _loss_setter(data, loss: str, source):
    """The function that installs the loss in a compiled net: --loss, or with --speed-bins
    CRESI's per-channel dice + focal (fcnkit.train.speed)."""
    from fcnkit.train.losses import replace_loss
    from fcnkit.train.speed import use_speed_loss

    if data is None or data.speed_bins is None:
        return lambda compiled: replace_loss(compiled, loss)
    if loss != "softmax":
        raise InputError(f"--loss {loss} with --speed-bins: speed models train with CRESI's "
                         "per-channel 0.75 focal + 0.25 dice; leave --loss out")
    channels = source.shapes["label"][1]
    return lambda compiled: use_speed_loss(compiled, channels)


def _scene_apls(val_source, tests):
    from fcnkit.train.apls_eval import SceneApls

    chips = getattr(val_source, "chips", None)
    if chips is None or not tests:
        raise InputError("--apls needs validation scenes and a test net (test_iter, "
                         "test_interval in the solver)")
    return SceneApls(chips, val_source.batch)


#: Band presets of contracts.md (WorldView-3 MUL band order 1..8).
BAND_PRESETS = {"wv3-8band": (1, 2, 3, 4, 5, 6, 7, 8), "wv3-rgb": (5, 3, 2), "wv3-rnir": (6, 7, 8)}


def parse_bands(text: str) -> tuple[int, ...]:
    """A preset name (wv3-8band, wv3-rgb, wv3-rnir) or 1-based indices "1,2,3".

    Raises:
        InputError: neither a preset nor a list of positive integers.
    """
    if text in BAND_PRESETS:
        return BAND_PRESETS[text]
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if not bands or min(bands) < 1:
        raise InputError(f"--bands '{text}': give a preset ({', '.join(BAND_PRESETS)}) or "
                         "1-based band indices like 6,7,8")
    return bands
