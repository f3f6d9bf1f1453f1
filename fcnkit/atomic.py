"""Atomic, crash-safe file and directory writes: a command that fails or is killed leaves
either the earlier output or the new one, complete, never a partial one.

Every writer in fcnkit goes through these helpers: the data is written to a hidden
temporary sibling (same directory, so that the final rename stays on one file system),
flushed to disk, and renamed into place only when complete.

Temporary siblings are named ``.NAME.PID.RANDOM.tmp`` (and ``.NAME.PID.RANDOM.old`` for an
earlier output being replaced), so that a later run can tell its own from those of a
process that died (SIGKILL, power loss): :func:`clean_stale` removes the latter before each
write, and puts an orphaned ``.old`` directory back when the output itself is missing (a
crash between the two renames of a swap on a system without rename-exchange).

A directory that exists is replaced by one ``renameat2(RENAME_EXCHANGE)`` on Linux (the two
names trade places in one step; Linux >= 3.15, glibc >= 2.28), else by two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Mapping

from fcnkit.errors import OutputError, OutputExistsError


def _output_error(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"{path}: cannot write it ({reason}); check that its folder exists "
                       "and is writable")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _umask() -> int:
    """The process umask. Linux (>= 4.7) reports it in /proc/self/status, read without
    changing it; elsewhere it is set and restored at once (briefly visible to other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_public(path: str | Path) -> None:
    """Give a file written by a library that creates it private (``tempfile.mkstemp``,
    safetensors: 0600) the mode an ordinary output gets: 0666 less the user's umask
    (0777 less the umask for a directory).

    Raises:
        OutputError: the mode cannot be set (naming ``path``).
    """
    path = Path(path)
    try:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())
    except OSError as e:
        raise _output_error(path, e) from None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, another user's
        return True
    return True


_STALE = re.compile(r"\.(.+)\.(\d+)\.[^.]+\.(tmp|old)\Z")
_cleaned: set[Path] = set()  # folders already cleaned by this process


def clean_stale(path: str | Path) -> list[Path]:
    """Remove the temporary siblings that fcnkit processes which no longer run left in the
    folder of ``path`` (for any output name, not only ``path``'s); when such a process left
    a complete earlier output (``.NAME.PID.RANDOM.old``) and ``NAME`` is missing, rename it
    back first. Returns the paths removed or restored. Errors are ignored (housekeeping; the
    write that follows reports its own). One pass over the folder: linear in its entries."""
    folder = Path(path).absolute().parent
    done = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name.endswith(".tmp"))  # .old first
    except OSError:
        return done
    for entry in entries:
        m = _STALE.match(entry.name)
        if not m or _pid_alive(int(m.group(2))):
            continue
        sib, target = Path(entry.path), folder / m.group(1)
        with contextlib.suppress(OSError):
            if m.group(3) == "old" and not target.exists() and not target.is_symlink():
                os.rename(sib, target)  # the earlier output, complete: a swap died half-way
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(sib)
            else:
                sib.unlink()
            done.append(sib)
    return done


def _clean_stale_once(path: Path) -> None:
    """:func:`clean_stale` for the folder of ``path``, once per process (a command that
    writes many files into one folder scans it once, not once per file)."""
    folder = Path(path).absolute().parent
    if folder not in _cleaned:
        clean_stale(path)
        _cleaned.add(folder)


def check_writable(path: str | Path, need_bytes: int = 0) -> None:
    """Check, before any work, that ``path`` (a file or directory to be written) can be
    created: its nearest existing ancestor accepts a new file (a probe is created and
    removed, which also works for root and read-only mounts), and, with ``need_bytes``,
    that its file system has that much free space.

    Raises:
        OutputError: the location is not writable or too full (names ``path``).
    """
    path = Path(path).absolute()
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _output_error(path, e) from None
    if need_bytes:
        free = shutil.disk_usage(parent).free
        if free < need_bytes:
            raise OutputError(f"{path}: cannot write it: it needs about {need_bytes:,} bytes and "
                              f"{parent} has {free:,} bytes free")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    Parent directories are created; stale temporaries of ``path`` are removed first.

    Raises:
        OutputError: the file cannot be created or renamed into place (the message names
            ``path``).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_once(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets the usual mode
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        try:
            with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
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
    _clean_stale_once(path)  # may restore an earlier output that a killed run moved aside
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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_renameat2 = None


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step (``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system does not offer it (not Linux, old glibc or kernel, a
    file system without it); the caller then falls back to two renames.

    Raises:
        OSError: the exchange was attempted and failed for another reason.
    """
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                   ctypes.c_uint]
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2 or os.environ.get("FCNKIT_NO_RENAME_EXCHANGE"):
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entry list: the renames in it), best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, path: Path) -> Path | None:
    """Put the complete directory ``tmp`` at ``path``; returns where the earlier output now
    is (to delete, or to put back), or None when there was none."""
    if not path.exists():
        os.replace(tmp, path)
        return None
    if exchange(tmp, path):
        return tmp  # tmp now holds the earlier output
    # two renames; a crash between them leaves the earlier output as .PID.*.old, which
    # clean_stale() renames back on the next run
    old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".old", dir=path.parent))
    os.rmdir(old)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old, path)
        raise
    return old


def _swap_back(path: Path, earlier: Path | None) -> None:
    """Undo :func:`_swap_in` (the earlier output back at ``path``, the new one removed)."""
    with contextlib.suppress(OSError):
        if earlier is None:
            shutil.rmtree(path)
        elif not exchange(earlier, path):
            shutil.rmtree(path)
            os.replace(earlier, path)
            return
        if earlier is not None:
            shutil.rmtree(earlier)


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, marker: str | None = OUTPUT_MARKER,
                     force: bool = False, companions: Mapping[Path, Path] | None = None
                     ) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``.

    Used for multi-file outputs (``compile -o DIR``, ``surgery -o OUTDIR``): either the
    whole directory appears, or nothing does; a process killed at any point leaves the
    earlier output or the new one (see the module docstring). An existing ``path`` is
    replaced only when :func:`check_output_directory` allows it; the caller should write
    ``marker`` into the directory. ``companions`` ({complete temporary file: its final
    path}) are renamed into place right after the directory, and the directory is put back
    when one of them fails (``compile -o DIR --onnx F``: both outputs or neither).

    Raises:
        OutputExistsError: ``path`` exists and may not be replaced.
        OutputError: the directory cannot be created or renamed into place.
    """
    path = check_output_directory(path, marker=marker, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        yield tmp
        for f in [tmp, *(p for p in tmp.rglob("*") if p.is_file())]:
            _fsync_path(f)
        try:
            earlier = _swap_in(tmp, path)
        except OSError as e:
            raise _output_error(path, e) from None
        for src, dst in (companions or {}).items():
            try:
                os.replace(src, dst)
            except OSError as e:
                _swap_back(path, earlier)
                raise _output_error(Path(dst), e) from None
        _fsync_path(path.parent)
        if earlier is not None:
            shutil.rmtree(earlier, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

