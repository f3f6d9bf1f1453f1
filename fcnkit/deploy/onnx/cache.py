"""An on-disk cache of ONNX exports, so that ``Predictor(backend="auto")`` on the CPU pays
the export (seconds to tens of seconds) once per model, tile and precision.

Where: ``$FCNKIT_CACHE_DIR/onnx`` when ``FCNKIT_CACHE_DIR`` is set, else
``$XDG_CACHE_HOME/fcnkit/onnx``, else ``~/.cache/fcnkit/onnx`` (the XDG Base Directory
specification's user cache directory).

An entry is two files named by its key: ``KEY.onnx`` (the checked export) and ``KEY.json``
(its size and sha256, and what it was made from, for people; :func:`update_record` adds
fields such as ``backend="auto"``'s probe result, :mod:`fcnkit.deploy.auto_probe`). The key is the sha256 of
everything the exported graph depends on (:func:`cache_key`): the model's definition and
weights (file bytes hashed, never file names or times), the preprocess JSON stored with
it, tile (H, W), batch, dtype, opset and the fcnkit version. Both files are written
atomically (:mod:`fcnkit.atomic`), the ``.json`` last; an entry is used only when its
``.json`` is readable and the ``.onnx`` has exactly the recorded size and sha256, so a
partial, truncated or altered entry is exported again and replaced, never trusted. The
check hashes the file in chunks; ONNX Runtime then opens it by path (the folder is the
user's own, 0700), so the model's bytes are not held twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable naming fcnkit's cache root (the ONNX cache is its ``onnx`` folder).
CACHE_ENV = "FCNKIT_CACHE_DIR"

_CHUNK = 1 << 20  # bytes read at a time while hashing a file


def cache_dir() -> Path:
    """The ONNX export cache folder (see the module docstring); not created here."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fcnkit" / "onnx"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_parts(source, weights) -> list[tuple[str, str]]:
    """(label, sha256) of what defines the model: a prototxt's bytes, every file of a
    compiled directory, or a zoo model's rendered deploy prototxt; then the weights file's
    bytes and the preprocess JSON, when there are any."""
    from fcnkit.deploy.tiling_info import preprocess_for

    path = Path(source)
    parts: list[tuple[str, str]] = []
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            parts.append((f"file:{f.relative_to(path).as_posix()}", _file_digest(f)))
    elif path.is_file():
        parts.append(("prototxt", _file_digest(path)))
    else:
        from fcnkit import zoo

        text = zoo.render(str(source))
        parts.append((f"zoo:{source}", hashlib.sha256(text.encode()).hexdigest()))
    if weights is not None:
        parts.append(("weights", _file_digest(Path(weights))))
    pre = preprocess_for(source, weights)
    if pre is not None:
        parts.append(("preprocess", hashlib.sha256(json.dumps(pre, sort_keys=True).encode()).hexdigest()))
    return parts


def cache_key(source, weights, *, tile: tuple[int, int] | None, batch: int | str | None,
              dtype: str, opset: int) -> str:
    """The sha256 (hex) naming the export of ``source`` (prototxt, compiled directory or zoo
    name) with ``weights`` (caffemodel or None) at ``tile`` (H, W pixels; None: as declared),
    ``batch`` (None / ``"dynamic"`` or N), ``dtype`` (fp32/fp16) and ``opset``, by this
    fcnkit version.

    Raises:
        OSError: a file of the model cannot be read (the caller falls back).
    """
    from fcnkit import __version__

    h = hashlib.sha256()
    fields = {"fcnkit": __version__, "tile": list(tile) if tile else None,
              "batch": "dynamic" if batch in (None, "dynamic") else int(batch), "dtype": dtype,
              "opset": int(opset), "model": _model_parts(source, weights)}
    h.update(json.dumps(fields, sort_keys=True).encode())
    return h.hexdigest()


@dataclass
class CachedExport:
    """An ONNX export checked in (or just written to) the cache.

    Attributes:
        path: the cache file, whose size and sha256 matched the entry's record when this
            was made (ONNX Runtime opens it by path: the model's bytes are never held in
            Python beside the session it builds; FCN-8s: 512 MiB less at the peak).
        key: the entry's key (:func:`cache_key`).
        exported: True when this call exported it (a miss, or a corrupted entry rebuilt).
    """

    path: Path
    key: str
    exported: bool

    @property
    def data(self) -> bytes:
        """The ONNX file's bytes, read now."""
        return self.path.read_bytes()


def _entry_valid(onnx_path: Path, meta_path: Path) -> bool:
    """Whether the entry's record is readable and the ``.onnx`` has exactly the recorded
    size and sha256 (hashed in chunks, not held); the reason for a no is logged at debug
    level."""
    if not onnx_path.is_file() and not meta_path.is_file():
        return False
    try:
        record = json.loads(meta_path.read_text())
        ok = (isinstance(record, dict) and record.get("bytes") == onnx_path.stat().st_size
              and record.get("sha256") == _file_digest(onnx_path))
    except (OSError, ValueError) as e:
        log.debug("ONNX cache entry %s unreadable (%s): exporting again", onnx_path.name, e)
        return False
    if not ok:
        log.debug("ONNX cache entry %s does not match its record (partial or altered): exporting again",
                  onnx_path.name)
    return ok


def cached_export(source, weights=None, *, tile: tuple[int, int] | None = None, dtype: str = "fp32",
                  opset: int | None = None, directory: str | Path | None = None) -> CachedExport:
    """The ONNX export of a Caffe model (dynamic batch, static H and W at ``tile``), from the
    cache when a valid entry exists, else exported with :func:`fcnkit.deploy.onnx.export_model`
    (checker + ONNX Runtime parity against torch) and stored.

    Args:
        source: prototxt path, compiled-model directory or zoo name.
        weights: caffemodel (None: a zoo model's bundled set, or none).
        tile: (H, W) pixels (None: the declared size).
        dtype: ``fp32`` or ``fp16``.
        opset: ONNX opset (default :data:`fcnkit.deploy.onnx.DEFAULT_OPSET`).
        directory: the cache folder (default :func:`cache_dir`).

    Raises:
        ExportError: the export fails (the net has no exact ONNX form, parity fails).
        OutputError: the cache folder cannot be written.
        what :func:`fcnkit.deploy.model.load_model` raises for a bad model.
    """
    from fcnkit.atomic import write_text
    from fcnkit.deploy.onnx import export as exporter
    from fcnkit.zoo.bundled import default_weights

    opset = exporter.DEFAULT_OPSET if opset is None else int(opset)
    weights = default_weights(source, weights)
    key = cache_key(source, weights, tile=tile, batch="dynamic", dtype=dtype, opset=opset)
    folder = Path(directory) if directory is not None else cache_dir()
    onnx_path, meta_path = folder / f"{key}.onnx", folder / f"{key}.json"
    if _entry_valid(onnx_path, meta_path):
        return CachedExport(onnx_path, key, False)
    _make_folder(folder)
    exporter.export_model(source, onnx_path, weights=weights, tile=tile, batch="dynamic", dtype=dtype,
                          opset=opset, exporter="auto")
    record: dict[str, Any] = {"sha256": _file_digest(onnx_path), "bytes": onnx_path.stat().st_size,
                              "source": str(source), "weights": None if weights is None else str(weights),
                              "tile": list(tile) if tile else None, "dtype": dtype, "opset": opset}
    write_text(meta_path, json.dumps(record, indent=1) + "\n")
    return CachedExport(onnx_path, key, True)


def read_record(entry: CachedExport) -> dict:
    """The JSON record of a cache entry (``KEY.json``), or {} when it cannot be read or is
    not a JSON object (fields other modules store there, such as ``backend="auto"``'s timed
    probe, are then simply absent)."""
    try:
        record = json.loads(entry.path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def update_record(entry: CachedExport, **fields: Any) -> bool:
    """Store ``fields`` (JSON values) in the entry's record, rewritten atomically; the size
    and sha256 of the ``.onnx`` stay as they are. Returns False, with the reason at debug
    level, when the record cannot be read back as an object or written (a read-only cache):
    the caller goes on without it."""
    from fcnkit.atomic import write_text
    from fcnkit.errors import OutputError

    record = read_record(entry)
    if "sha256" not in record:
        log.debug("ONNX cache record of %s unreadable: %s not stored", entry.path.name, ", ".join(fields))
        return False
    record.update(fields)
    try:
        write_text(entry.path.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    except (OSError, OutputError) as e:  # the record is an optimisation: go on without it
        log.debug("ONNX cache record of %s not written (%s)", entry.path.name, e)
        return False
    return True


def _make_folder(folder: Path) -> None:
    """Create the cache folder (private to the user: 0700 as the XDG spec asks of
    ``$XDG_CACHE_HOME``'s own folders).

    Raises:
        OutputError: it cannot be created.
    """
    from fcnkit.errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the ONNX cache folder ({e.strerror or e}); set "
                          f"{CACHE_ENV} to a writable folder") from None
