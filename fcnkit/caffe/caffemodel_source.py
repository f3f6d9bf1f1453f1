"""The bytes of a caffemodel being read: a read-only file mapping, or the whole file in memory.

:mod:`fcnkit.caffe.caffemodel` walks the protobuf structure (keys, lengths, small fields)
through :attr:`ModelSource.buf`, and copies every blob's float data out with
:meth:`ModelSource.copy_out` into an array of its own, so that the arrays handed out are
aligned, writable and own their memory, and nothing else of the file stays resident.

Regular files are mapped (``mmap``, read-only, shared with the page cache): only the pages
the walk touches become part of the process's resident set, and :meth:`ModelSource.release`
drops them again (``madvise(MADV_DONTNEED)``: the kernel rereads them from the file if they
are touched again). Float data are read with ``readinto`` straight into each blob's array,
never through the mapping: a load peaks at the blobs' own size (plus one blob's pages for
the rare encodings that are converted: double, fp16 raw_data, one key per value).

Where a mapping is impossible (a pipe, a character device, an empty file, a file system
that refuses ``mmap``) the whole file is read into one ``bytearray`` instead; the arrays are
copied out of it the same way (peak: the file plus its blobs, during the read only).

As with any memory-mapped reader (safetensors, ``numpy.memmap``), a file truncated by
another process *while* it is being read makes the process receive SIGBUS; fcnkit's own
writers replace files by renaming a finished temporary file, which never does this.
"""

from __future__ import annotations

import mmap
import os
import stat

import numpy as np

from fcnkit.errors import CaffeFormatError
from fcnkit.limits import check_bytes

_CHUNK = 16 << 20  # bytes read per step from a pipe or device


class ModelSource:
    """The bytes of one caffemodel (use :func:`open_source`; a context manager).

    Attributes:
        buf: the file's bytes: an ``mmap`` (read-only) or a ``bytearray``; indexable,
            sliceable, ``len()`` is the file size in bytes.
        path: the file, for messages.
        mapped: True when ``buf`` is a file mapping.
    """

    def __init__(self, buf, path: str, file=None):
        self.buf = buf
        self.path = path
        self.mapped = file is not None  # the file stays open only beside its mapping
        self._file = file

    def copy_out(self, start: int, stop: int, dtype: str) -> np.ndarray:
        """Bytes ``[start, stop)`` of the file as a new 1-D array of ``dtype`` (owning its
        memory, aligned, writable), read straight into the array.

        The caller has checked that the range lies inside the file and that its length is a
        multiple of the item size.

        Raises:
            CaffeFormatError: the file got shorter since it was opened.
        """
        out = np.empty((stop - start) // np.dtype(dtype).itemsize, dtype)
        if not out.nbytes:
            return out
        if not self.mapped:
            out[...] = np.frombuffer(self.buf, dtype, count=out.size, offset=start)
            return out
        with memoryview(out).cast("B") as view:
            self._file.seek(start)
            got = 0
            while got < len(view):
                n = self._file.readinto(view[got:])
                if not n:
                    raise CaffeFormatError(
                        f"the file got shorter while it was being read (byte {start + got} of "
                        f"{len(self.buf)} is gone); another program is writing it: wait for "
                        "it to finish, then read it again", self.path)
                got += n
        return out

    def release(self, start: int, stop: int) -> None:
        """Drop the mapped pages of bytes ``[start, stop)`` from this process's resident set
        (``madvise(MADV_DONTNEED)``); nothing for an in-memory file. Advice only: the bytes
        stay readable."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if not self.mapped or advice is None or stop <= start:
            return
        first = start - start % mmap.PAGESIZE
        try:
            self.buf.madvise(advice, first, min(stop, len(self.buf)) - first)
        except (OSError, ValueError):
            pass  # advice refused: the pages just stay resident until the mapping closes

    def close(self) -> None:
        """Unmap and close the file (idempotent)."""
        if self.mapped:
            try:
                self.buf.close()
            except BufferError:
                pass  # a view still exists (an error being raised): unmapped when it goes
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(path: str) -> ModelSource:
    """Open ``path`` for :func:`fcnkit.caffe.read_caffemodel`: mapped when it is a regular,
    non-empty file that can be mapped, else read whole into memory.

    Raises:
        CaffeFormatError: the file does not exist, is a directory, or cannot be read.
        LimitError: a pipe or device delivers more than the memory limit.
    """
    try:
        file = open(path, "rb", buffering=0)
    except OSError as exc:
        raise CaffeFormatError.unreadable(exc, path, "caffemodel") from None
    try:
        info = os.fstat(file.fileno())
        sized = stat.S_ISREG(info.st_mode) and info.st_size > 0
        if sized:
            try:
                return ModelSource(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ), path, file)
            except (OSError, ValueError):
                pass  # a file system without mmap: read it instead
        # no size to trust (a pipe, a device, an empty or /proc-like file): read to the end
        buf = _read_all(file, info.st_size if sized else None, path)
    except OSError as exc:
        file.close()
        raise CaffeFormatError.unreadable(exc, path, "caffemodel") from None
    except BaseException:
        file.close()
        raise
    file.close()
    return ModelSource(buf, path)


def _read_all(file, size: int | None, path: str) -> bytearray:
    """The whole file in one bytearray: ``size`` bytes of a regular file (fewer if it shrank),
    or a stream read to its end in steps, each checked against the memory limit."""
    if size is None:
        buf = bytearray()
        while chunk := file.read(_CHUNK):
            check_bytes(len(buf) + len(chunk), f"{path}: the caffemodel read from this stream")
            buf += chunk
        return buf
    buf = bytearray(size)
    got = 0
    with memoryview(buf) as view:
        while got < size:
            n = file.readinto(view[got:])
            if not n:
                break
            got += n
    if got < size:  # the file shrank while being read
        del buf[got:]
    return buf
