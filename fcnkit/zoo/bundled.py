"""Weight sets shipped with the package (``fcnkit/zoo/weights/``).

A zoo model NAME has a bundled weight set when ``weights/NAME.caffemodel`` exists; beside it
lie ``NAME.preprocess.json`` (the stretch its training used, the schema of
``fcnkit.train``'s snapshots) and ``NAME.json``, the provenance written by
``tools/train_bundled_model.py``: data (synthetic scenes, generator, seeds), solver,
iterations, training time, CPU, held-out road IoU and APLS, and the caffemodel's sha256.

Commands that accept a zoo name (``fcnkit predict``, ``fcnkit export``,
``Predictor.from_path``, ``fcnkit.deploy.model.load_model``) use the bundled weights when no
``-w`` is given (:func:`default_weights`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fcnkit.errors import InputError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def weights_path(name: str) -> Path | None:
    """``weights/NAME.caffemodel`` when the zoo ships one for ``name``, else None."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        return None  # a path, never a bundled name (no lookups outside WEIGHTS_DIR)
    path = WEIGHTS_DIR / f"{name}.caffemodel"
    return path if path.is_file() else None


def provenance(name: str) -> dict | None:
    """The provenance JSON of ``name``'s bundled weights (a dict), or None without one.

    Raises:
        InputError: the JSON file is unreadable or not a JSON object (a broken install).
    """
    if weights_path(name) is None:
        return None
    path = WEIGHTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: the provenance of the bundled weights is unreadable ({e}); "
                         "reinstall fcnkit") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the provenance of the bundled weights is not a JSON object; "
                         "reinstall fcnkit")
    return data


def verify(name: str) -> Path:
    """Check the bundled caffemodel of ``name`` against the sha256 in its provenance.

    Returns:
        The caffemodel path.

    Raises:
        InputError: no bundled weights, or the file's sha256 or size differs from the record.
    """
    path = weights_path(name)
    if path is None:
        raise InputError(f"the zoo has no bundled weights for '{name}'")
    record = provenance(name) or {}
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.get("caffemodel_sha256") or len(data) != record.get("caffemodel_bytes"):
        raise InputError(f"{path}: sha256 {digest} ({len(data)} bytes) differs from the "
                         f"provenance record {record.get('caffemodel_sha256')} "
                         f"({record.get('caffemodel_bytes')} bytes); reinstall fcnkit")
    return path


def summary(name: str) -> dict | None:
    """The short provenance shown by ``fcnkit zoo show NAME --info`` (None without weights):
    file, data, iterations, training time and CPU, held-out road IoU and APLS."""
    record = provenance(name)
    if record is None:
        return None
    recipe = record.get("recipe", {})
    held = record.get("heldout", {})
    return {
        "file": str(weights_path(name)),
        "sha256": record.get("caffemodel_sha256"),
        "trained_on": record.get("trained_on"),
        "data": (f"{recipe.get('train_scenes')} synthetic scenes of {recipe.get('scene_size_px')} px "
                 f"at {recipe.get('gsd_m')} m ({recipe.get('generator')}, seeds "
                 f"{recipe.get('train_seed0', 0) + 1}..{recipe.get('train_seed0', 0) + recipe.get('train_scenes', 0)}; "
                 "split 70/15/15 by fcnkit train)"),
        "training": (f"fcnkit train, {record.get('iterations')} iterations, "
                     f"{recipe.get('chip_px')} px chips, batch {recipe.get('batch')}, "
                     f"{recipe.get('solver', {}).get('type')} base_lr "
                     f"{recipe.get('solver', {}).get('base_lr')}, "
                     f"{record.get('training_seconds')} s on {record.get('cpu')}"),
        "heldout": (f"{held.get('scenes')} synthetic scenes (seeds {held.get('seeds')}): road IoU "
                    f"{held.get('road_iou')}, APLS {held.get('apls')}"),
        "made_by": record.get("command"),
    }


def default_weights(model, weights):
    """``weights`` when given, else the bundled caffemodel of the zoo name ``model`` (None
    when ``model`` is a file or directory, or a zoo name without a bundled set)."""
    if weights is not None:
        return weights
    if Path(str(model)).exists():
        return None
    return weights_path(str(model))
