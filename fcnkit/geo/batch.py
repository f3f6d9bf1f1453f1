"""Many scenes: ``predict_scenes`` runs a list of scenes with one model load, locally or over
a Ray cluster (Ray Core actors, one model per actor); a failed scene is retried once,
reported, and the others go on.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fcnkit.errors import FcnkitError, InputError
from fcnkit.geo.predict import (SceneOptions, SceneResult, is_complete, notify, open_predictor, output_paths,
                               predict_scene)

#: Suffixes taken from a directory of scenes.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")


@dataclass
class RunResult:
    """A run over scenes: results (done), skipped (complete outputs with --resume) and
    failures (scene -> error message, after the retry)."""

    results: list[SceneResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)


def expand_scenes(specs) -> list[Path]:
    """Files, directories (their rasters, sorted) and globs -> scene paths, in order.

    Raises:
        InputError: a path that does not exist and matches nothing, no scene at all, or two
            scenes whose outputs would have the same names.
    """
    out: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            hits = sorted(glob.glob(str(spec)))
            if not hits:
                raise InputError(f"{spec}: no such file, directory or matching glob")
            out += [Path(h) for h in hits]
    if not out:
        raise InputError("no scene to predict (the directories hold no .tif/.tiff/.vrt/.img/.jp2 file)")
    seen: dict[str, Path] = {}
    for s in out:
        stem = Path(s).stem
        if stem in seen and seen[stem] != s:
            raise InputError(f"{seen[stem]} and {s} would write outputs of the same name ({stem}_labels.tif); "
                             "predict them into different OUTDIRs")
        seen[stem] = s
    return out


def predict_scenes(model, scenes, outdir, options: SceneOptions | None = None, *, resume: bool = False,
                   predictor_options: dict | None = None, ray: str | None = None, num_actors: int | None = None,
                   on_scene: Callable[[str, str, Any], None] | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> RunResult:
    """Predict many scenes into ``outdir``.

    Args:
        model: a :class:`fcnkit.deploy.Predictor`, or a MODEL path/zoo name (opened once here,
            or once per Ray actor) with ``predictor_options`` (``Predictor.from_path`` kwargs).
        scenes: scene paths (see :func:`expand_scenes`).
        options: :class:`SceneOptions`; resume: skip scenes whose outputs are complete.
        ray: None (local), ``"local"`` (start a local Ray instance) or a Ray address; needs
            ``fcnkit[cluster]``. ``num_actors``: actors (default: min(scenes, 2)).
        on_scene: called with (scene, "done" | "skipped" | "failed" | "retry", result or message).
        progress: called with (scene, tiles done, tiles in all) in the local run.

    Returns:
        :class:`RunResult` (a failing scene does not stop the others).

    Raises:
        InputError, BackendUnavailableError: bad model or options (before any scene runs).
    """
    opts = options or SceneOptions()
    run = RunResult()
    todo = []
    for s in scenes:
        if resume and is_complete(s, outdir, opts):
            run.skipped.append(str(s))
            notify(on_scene, str(s), "skipped", None)
        else:
            todo.append(str(s))
    if not todo:
        return run
    name = (predictor_options or {}).get("model_name") or ("" if hasattr(model, "predict") else str(model))
    if ray is not None:
        from fcnkit.geo.cluster import run_on_ray

        run_on_ray(str(model), todo, outdir, opts, predictor_options or {}, ray, num_actors, run, on_scene)
        return run
    predictor = model if hasattr(model, "predict") else open_predictor(model, predictor_options or {})
    for s in todo:
        for attempt in (1, 2):
            try:
                res = predict_scene(predictor, s, outdir, opts, model_name=str(name),
                                    progress=(lambda d, t, s=s: progress(s, d, t)) if progress else None)
            except FcnkitError as e:
                if attempt == 1 and _retryable(e):
                    run.retried.append(s)
                    notify(on_scene, s, "retry", str(e))
                    continue
                run.failures[s] = str(e)
                notify(on_scene, s, "failed", str(e))
            else:
                run.results.append(res)
                notify(on_scene, s, "done", res)
            break
    return run


def _retryable(e: FcnkitError) -> bool:
    # input errors (not a raster, band mismatch) fail the same way twice; I/O hiccups may not
    return not isinstance(e, InputError)


__all__ = ["RunResult", "expand_scenes", "predict_scenes", "output_paths"]
