"""Optional TensorBoard logging of the training figures (``fcnkit train --tensorboard DIR``).

TensorBoard is not a dependency of fcnkit: ``torch.utils.tensorboard`` (which needs the
``tensorboard`` package) is imported only when a log folder is given.
"""

from __future__ import annotations

from pathlib import Path

from fcnkit.errors import InputError


def summary_writer(folder: str | Path):
    """A ``torch.utils.tensorboard.SummaryWriter`` writing event files into ``folder``.

    Raises:
        InputError: the tensorboard package is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError(f"--tensorboard {folder}: TensorBoard logging needs the tensorboard "
                         "package (pip install tensorboard); or leave --tensorboard out") from None
    return SummaryWriter(log_dir=str(folder))


class ScalarLog:
    """Writes (iter, phase, name, value) rows as TensorBoard scalars tagged ``phase/name``
    (e.g. ``train/loss``, ``train/lr``, ``test0/apls``) at step ``iter``."""

    def __init__(self, folder: str | Path):
        self.writer = summary_writer(folder)

    def write(self, rows) -> None:
        for it, phase, name, value in rows:
            self.writer.add_scalar(f"{phase}/{name}", float(value), int(it))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
