"""The ``auto-cpu`` row of tools/bench_backends.py (not a test): what
``Predictor.from_path(MODEL, backend="auto", device="cpu")`` runs on this machine, timed
as a user would call it (numpy in, numpy out, the Predictor's batching), with its choice.

The net is the benchmark's own (same weights, untrained ones filled), written as a deploy
prototxt + caffemodel, so that the Predictor opens it the way it opens any Caffe model: the
export cache of ``FCNKIT_CACHE_DIR`` (else ``~/.cache/fcnkit/onnx``) and, on the first run
for this model, tile and machine, the export and the timed probe
(fcnkit.deploy.auto_probe); later runs read the probe's record. The row's note says which
path auto chose, the probe's figures, and how long opening took.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def auto_call(write_caffe, compiled, shape, x: np.ndarray, out_name: str, stem: Path):
    """(timed call, note) for the ``auto-cpu`` row.

    Args:
        write_caffe: ``(compiled, shape, stem) -> (prototxt, caffemodel)`` (the benchmark's
            writer); files already written at ``stem`` (by the OpenCV peer) are reused.
        compiled: the benchmark's CompiledNet; shape: its input (N, C, H, W).
        x: the benchmark's input batch, float32 (N, C, H, W).
        out_name: the output blob timed (raw values: no softmax added).
        stem: path stem of the Caffe files.

    Raises:
        whatever the Predictor raises when it cannot open the model.
    """
    import torch

    from fcnkit.deploy.predictor import Predictor

    proto, weights = stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel")
    if not (proto.is_file() and weights.is_file()):
        proto, weights = write_caffe(compiled, shape, stem)
    t0 = time.perf_counter()
    pred = Predictor.from_path(proto, weights=weights, backend="auto", device="cpu", batch_size=int(shape[0]),
                               output=out_name, probabilities=False)
    opened = time.perf_counter() - t0
    got = pred.predict(x)
    with torch.inference_mode():
        ref = compiled.module(torch.from_numpy(x))[out_name].numpy()
    err = float(np.abs(got - ref).max() / max(1e-12, np.abs(ref).max()))
    note = f"{pred.backend_detail}; opened in {opened:.1f} s; rel. err vs torch {err:.1e}"
    return (lambda: pred.predict(x)), note
