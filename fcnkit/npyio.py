"""Reading ``.npy`` / ``.npz`` array files given on the command line, header first.

A ``.npy`` header states the dtype and shape; it is read and checked (numpy's
``numpy.lib.format.read_magic`` and ``read_array_header_1_0/2_0``) before any data is:
only plain numeric dtypes (bool, integers, floats) are accepted (never objects, which
would need unpickling, nor strings or structured records), at most 8 axes, and a size
within :func:`fcnkit.limits.memory_limit`. An ``.npz`` is a zip of ``.npy`` members, each
checked the same way. Format reference: numpy/lib/format.py (NEP 1).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fcnkit.errors import InputError
from fcnkit.limits import check_bytes

#: dtype kinds accepted: bool, signed and unsigned integers, floats.
NUMERIC_KINDS = "biuf"
MAX_AXES = 8


def _check_header(f, where: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} (fcnkit reads 1.0 and 2.0)")
    except Exception as e:  # noqa: BLE001 - numpy's header parser (ast.literal_eval, tokenize)
        # raises ValueError, SyntaxError, TokenError, TypeError... on a damaged header
        raise InputError(f"{where}: not a .npy array file ({type(e).__name__}: {e})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.kind not in NUMERIC_KINDS:
        raise InputError(f"{where}: holds {dtype} data; fcnkit takes numeric arrays (bool, "
                         "integer, float) only, and never unpickles objects")
    if len(shape) > MAX_AXES:
        raise InputError(f"{where}: has {len(shape)} axes; at most {MAX_AXES} are accepted")
    # the array itself, then its float32 copy
    nbytes = int(np.prod(shape, dtype=object)) * (dtype.itemsize + 4)
    check_bytes(nbytes, f"{where}: the array of shape {tuple(shape)} ({dtype})")
    return tuple(shape), dtype


def is_npy(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts with the .npy magic string."""
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def npy_shape(path: str | Path) -> tuple[int, ...]:
    """The shape stored in a ``.npy`` file's header, without reading its data.

    Raises:
        InputError: missing, unreadable or not a numeric .npy file; LimitError: an array
            larger than the memory limit.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return _check_header(f, str(p))[0]
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror or e})") from None


def read_npy(path: str | Path) -> np.ndarray:
    """Read one numeric array from a ``.npy`` file, header checked first.

    Returns:
        The array, shape and dtype as stored.

    Raises:
        InputError: missing, unreadable, not .npy, a non-numeric dtype, too many axes or
            a truncated file; LimitError: larger than the memory limit.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            _check_header(f, str(p))
            f.seek(0)
            arr = np.lib.format.read_array(f, allow_pickle=False)
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{p}: damaged .npy file ({e})") from None
    return arr


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, each member's header checked first.

    Returns:
        {name: array} (the member names without ``.npy``).

    Raises:
        InputError: not a zip file, a member that is not a numeric .npy, or damaged data;
            LimitError: the arrays together exceed the memory limit.
    """
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except Exception as e:  # noqa: BLE001 - BadZipFile, OSError, ValueError, EOFError...
        raise InputError(f"{p}: not an .npz file (a zip of .npy arrays: {e})") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        total = 0
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in infos:
            where = f"{p} (member {info.filename})"
            try:
                with zf.open(info) as f:
                    shape, dtype = _check_header(f, where)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - zipfile raises BadZipFile, zlib.error,
                # NotImplementedError (compression), RuntimeError (encryption), EOFError...
                raise InputError(f"{where}: damaged ({type(e).__name__}: {e})") from None
            total += int(np.prod(shape, dtype=object)) * (dtype.itemsize + 4)
            check_bytes(total, f"{p}: its arrays")
        for info in infos:
            name = info.filename.removesuffix(".npy")
            try:
                with zf.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - as above, and ValueError on short data
                raise InputError(f"{p} (member {info.filename}): damaged ({type(e).__name__}: {e})") from None
    return out
