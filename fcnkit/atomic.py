"""Atomic file and directory writes: a command that fails leaves no partial output.

Every writer in fcnkit goes through these helpers: the data is written to a temporary
sibling (same directory, so the final ``os.replace`` is a rename on one file system) and
renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

from fcnkit.errors import OutputError, OutputExistsError


def _output_error(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"{path}: cannot write it ({reason}); check that its folder exists "
                       "and is writable")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    Parent directories are created.

    Raises:
        OutputError: the file cannot be created or renamed into place (the message names
            ``path``).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _output_error(path, e) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (raises :class:`OutputError`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (raises :class:`OutputError`)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


#: The file every fcnkit output directory holds (compiled model, surgery result); an
#: existing directory with it is an earlier output that may be replaced.
OUTPUT_MARKER = "fcnkit.json"


def check_output_directory(path: str | Path, *, marker: str | None = OUTPUT_MARKER,
                           force: bool = False) -> Path:
    """Check that ``path`` may be (re)written as an output directory; returns it resolved.

    Allowed: a path that does not exist, an empty directory, a directory holding
    ``marker`` (an earlier output of fcnkit), or any directory when ``force`` is true.

    Raises:
        OutputExistsError: ``path`` is a file, or a directory with other contents.
    """
    path = Path(path).resolve()
    if not path.exists():
        return path
    if not path.is_dir():
        raise OutputExistsError(f"{path} exists and is a file; fcnkit writes a directory there: "
                                "choose another output path")
    if force or not any(path.iterdir()) or (marker is not None and (path / marker).is_file()):
        return path
    raise OutputExistsError(
        f"{path} exists and is not an fcnkit output directory (no {marker}); fcnkit replaces "
        "only its own output directories: choose another output path, or pass --force to "
        "replace it and everything in it")


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, marker: str | None = OUTPUT_MARKER,
                     force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``.

    Used for multi-file outputs (``compile -o DIR``, ``surgery -o OUTDIR``): either the
    whole directory appears, or nothing does. An existing ``path`` is replaced only when
    :func:`check_output_directory` allows it (it is removed after the new one is
    complete); the caller should write ``marker`` into the directory.

    Raises:
        OutputExistsError: ``path`` exists and may not be replaced.
        OutputError: the directory cannot be created or renamed into place.
    """
    path = check_output_directory(path, marker=marker, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        yield tmp
        try:
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.rmdir(old)
                os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except OSError:
                    os.replace(old, path)  # put the earlier output back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as e:
            raise _output_error(path, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
