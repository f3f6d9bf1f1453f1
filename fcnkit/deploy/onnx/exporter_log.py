"""The torch ONNX exporter's output: silenced while it runs, kept for error messages, and
its exceptions shortened to what a user can act on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator, Sequence


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        try:
            msg = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                msg += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            self.records.append(msg)
        except Exception:  # noqa: BLE001 - logging must never raise
            pass


@contextlib.contextmanager
def quiet_exporter() -> Iterator[_Capture]:
    """Silence the exporter's progress output and warnings; keep its log for error messages."""
    cap = _Capture()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export",
                                               "onnxscript", "onnx_ir", "torch.fx.experimental")]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    for lg in loggers:
        lg.handlers = [cap]
        lg.propagate = False
        lg.setLevel(logging.DEBUG if lg.name.startswith(("onnxscript", "torch.onnx")) else logging.ERROR)
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            yield cap
    finally:
        for lg, level, prop, handlers in saved:
            lg.setLevel(level)
            lg.propagate = prop
            lg.handlers = handlers
        cap.records.extend(line for line in (out.getvalue() + err.getvalue()).splitlines() if line.strip())


def conversion_reason(records: Sequence[str]) -> str:
    """The version converter's own words from the exporter's log (e.g. "No Adapter From
    Version $14 for Relu")."""
    lines = [ln.strip() for r in records for ln in r.splitlines() if ln.strip()]
    for keys in (("No Adapter", "adapter_lookup"), ("Failed to convert",), ("not supported by the onnxscript",)):
        hits = [ln for ln in lines if any(k in ln for k in keys)]
        if hits:
            return "; ".join(dict.fromkeys(hits))[:600]
    return ""


def short_error(e: BaseException, limit: int = 1500) -> str:
    """A readable one-paragraph form of an exporter exception (ANSI colours and the
    exporter's generic advice removed; the exception summary kept)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(e).__name__}: {e}")
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
        for stop in ("\nFor more information", "\nThe error above occurred", "\n(Refer to"):
            text = text.split(stop, 1)[0]
        text = " ".join(text.split())
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause)[:200] not in text:
        text += f" (caused by {type(cause).__name__}: {str(cause)[:400]})"
    return text if len(text) <= limit else text[:limit] + " ..."
