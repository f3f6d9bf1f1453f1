"""Memory limits: every size read from an input file is checked before it is allocated.

The limit is, in order: :func:`set_memory_limit` (the CLI's ``--memory-limit``), the
environment variable ``FCNKIT_MEMORY_LIMIT``, or half of the machine's physical memory.
Sizes are given in bytes, with an optional unit: ``512M``, ``8G``, ``1.5T`` (powers of
1024), or ``0``/``none`` for no limit.
"""

from __future__ import annotations

import os

from fcnkit.errors import InputError, LimitError

#: The share of physical memory allowed by default: room for the second copy a conversion
#: needs (Caffe blobs -> torch tensors) and for the rest of the process.
DEFAULT_FRACTION = 0.5
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_override: int | None = None


def parse_bytes(text: str) -> int:
    """``"8G"`` -> 8589934592; ``"0"`` or ``"none"`` -> 0 (no limit).

    Raises:
        InputError: not a size.
    """
    t = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    if t in ("0", "NONE", ""):
        return 0
    unit = t[-1] if t[-1] in _UNITS else ""
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        raise InputError(f"bad memory size '{text}': use bytes or a number with K, M, G or T "
                         "(8G), or 0 for no limit") from None
    if not value > 0 or value != value or value > 2**63:
        raise InputError(f"bad memory size '{text}': must be a positive number")
    return int(value * _UNITS[unit])


def physical_memory() -> int | None:
    """Bytes of physical memory (``sysconf``), or None where it is unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def set_memory_limit(limit: int | str | None) -> None:
    """Set the limit for this process (bytes, a size string, 0 for none, or None to go
    back to ``FCNKIT_MEMORY_LIMIT`` / the default)."""
    global _override
    _override = None if limit is None else (limit if isinstance(limit, int) else parse_bytes(limit))


def memory_limit() -> int:
    """The limit in bytes (0: none); see the module docstring.

    Raises:
        InputError: ``FCNKIT_MEMORY_LIMIT`` is not a size.
    """
    if _override is not None:
        return _override
    env = os.environ.get("FCNKIT_MEMORY_LIMIT")
    if env is not None:
        return parse_bytes(env)
    phys = physical_memory()
    return int(phys * DEFAULT_FRACTION) if phys else 0


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def check_bytes(nbytes: int, what: str) -> None:
    """Refuse ``nbytes`` (an allocation about to happen) above the limit.

    ``what`` starts the message: ``"net.prototxt: layer 'fc6' (InnerProduct): its parameters"``.

    Raises:
        LimitError: ``nbytes`` exceeds :func:`memory_limit`.
    """
    limit = memory_limit()
    if limit and nbytes > limit:
        raise LimitError(f"{what} would need {_human(nbytes)} ({nbytes:,} bytes), more than the "
                         f"memory limit of {_human(limit)}; check the shapes, or raise the limit "
                         "with --memory-limit SIZE or FCNKIT_MEMORY_LIMIT=SIZE (0: none)")
