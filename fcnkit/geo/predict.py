"""``predict_scene``: one GeoTIFF scene through a Predictor to georeferenced outputs.

Outputs in OUTDIR, named after the scene's file stem:

- ``<stem>_labels.tif``: uint8 class index per pixel, nodata 255 where the input is nodata,
  a colour table, the class names in the band description;
- ``<stem>_probabilities.tif`` (optional): the road probability (class 1 of a 2-class model;
  every class for K > 2) as uint8 ``round(p * 254)`` with nodata 255, or 16-bit floats with
  NaN nodata;
- ``<stem>_overlay.png`` (optional): a quicklook;
- ``<stem>.json``: the sidecar (model, backend, bands, stretch, tiling, fcnkit version,
  counts), written last: its presence means the scene is complete (``--resume``).

Every output has the scene's CRS, transform and size, is tiled (256 px), DEFLATE-compressed
and has internal overviews (or is a COG with ``cog=True``); each is written to a temporary
sibling and renamed into place only when the scene succeeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from fcnkit.atomic import write_text
from fcnkit.errors import InputError, OutputError
from fcnkit.geo.bands import parse_bands
from fcnkit.geo.io import LABEL_NODATA, build_overviews, open_output, open_scene, output_profile, temp_sibling, to_cog
from fcnkit.geo.scene import plan_tiling, run_tiles
from fcnkit.geo.stretch import Stretch, from_preprocess, parse_stretch_option, percentile_stretch


@dataclass
class SceneOptions:
    """Options of a run (the ``fcnkit predict`` flags).

    Attributes:
        bands: preset name, "5,3,2" or a list (1-based), or None (the model's preprocess
            bands, else all bands of the scene).
        stretch: "P1,P2", "none", "model" or a :class:`Stretch`.
        tile, halo: pixels (None: from the model, see :func:`fcnkit.geo.scene.plan_tiling`).
        blend: hann, linear or none; batch: tiles per chunk (None: the Predictor's).
        tta: none or flip; threshold: road probability threshold (None: argmax).
        probabilities: None, "uint8" or "float"; cog: write COGs.
        overlay: None, "png" or "jpg"; overlay_width: pixels.
    """

    bands: Any = None
    stretch: Any = "2,98"
    tile: int | None = None
    halo: int | None = None
    blend: str = "hann"
    batch: int | None = None
    tta: str = "none"
    threshold: float | None = None
    probabilities: str | None = None
    cog: bool = False
    overlay: str | None = None
    overlay_width: int = 1024


@dataclass
class SceneResult:
    """What one scene gave: its outputs, counts and seconds, warnings."""

    scene: str
    outputs: list[str]
    rows: int
    cols: int
    tiles: int
    skipped_tiles: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    resumed: bool = False
    backend: str = ""  # what ran, in words (Predictor.backend_detail: auto's choice and figures)

    @property
    def megapixels(self) -> float:
        return self.rows * self.cols / 1e6


def output_paths(scene: str | Path, outdir: str | Path, options: SceneOptions) -> dict[str, Path]:
    """The output files of a scene (keys: labels, probabilities, overlay, sidecar)."""
    stem = Path(scene).stem
    out = Path(outdir)
    paths = {"labels": out / f"{stem}_labels.tif"}
    if options.probabilities:
        paths["probabilities"] = out / f"{stem}_probabilities.tif"
    if options.overlay:
        paths["overlay"] = out / f"{stem}_overlay.{options.overlay}"
    paths["sidecar"] = out / f"{stem}.json"
    return paths


def is_complete(scene: str | Path, outdir: str | Path, options: SceneOptions) -> bool:
    """True when the sidecar of ``scene`` and every output it lists exist (``--resume``)."""
    paths = output_paths(scene, outdir, options)
    try:
        doc = json.loads(paths["sidecar"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    listed = doc.get("outputs") if isinstance(doc, dict) else None
    return isinstance(listed, list) and all(p.is_file() for k, p in paths.items()) and \
        all((Path(outdir) / Path(str(name)).name).is_file() for name in listed)


def resolve_stretch(src, bands, option, info) -> Stretch:
    """The :class:`Stretch` of ``option`` for a scene: computed percentiles, none, or the
    model's stored parameters (``model``: needs ``info.preprocess``).

    Raises:
        InputError: ``model`` without stored parameters, or parameters for another band count.
    """
    if isinstance(option, Stretch):
        return option
    kind, pct = parse_stretch_option(str(option))
    if kind == "none":
        return Stretch("none", [], [], None)
    if kind == "percentile":
        return percentile_stretch(src, bands, pct)
    if not info.preprocess:
        raise InputError("--stretch model: the model stores no preprocess JSON (training writes "
                         "<snapshot>.preprocess.json; ONNX metadata fcnkit.preprocess); give P1,P2 or none")
    stretch, _ = from_preprocess(info.preprocess)
    if stretch.method == "percentile" and len(stretch.lo) != len(bands):
        raise InputError(f"--stretch model: the stored stretch has {len(stretch.lo)} band(s), {len(bands)} chosen")
    return stretch


#: GDAL block cache for a scene, MiB (GDAL's default, 5 % of RAM, makes the peak memory grow
#: with the scene up to that size; strips are read and written once, so a small cache loses
#: nothing). An explicit GDAL_CACHEMAX in the environment wins.
GDAL_CACHE_MIB = 64


def predict_scene(predictor, scene: str | Path, outdir: str | Path, options: SceneOptions | None = None, *,
                  model_name: str = "", progress: Callable[[int, int], Any] | None = None) -> SceneResult:
    """Predict one scene and write its outputs atomically into ``outdir``.

    Args:
        predictor: a :class:`fcnkit.deploy.Predictor` (float32 N x C x T x T in, N x K x T x T
            probabilities out).
        scene: a raster GDAL opens (GeoTIFF, COG, VRT; any dtype and band count).
        outdir: the output folder (created).
        options: :class:`SceneOptions`; model_name: recorded in the sidecar.
        progress: called with (tiles done, tiles in all).

    Returns:
        :class:`SceneResult` (warnings: a scene without CRS).

    Raises:
        InputError: not a raster, band count mismatch, a truncated file, bad options.
        OutputError: OUTDIR or a file in it cannot be written. Nothing is left behind.
    """
    import rasterio

    if "GDAL_CACHEMAX" in os.environ:
        return _predict_scene(predictor, scene, outdir, options, model_name, progress)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MIB * 2**20):
        return _predict_scene(predictor, scene, outdir, options, model_name, progress)


def _predict_scene(predictor, scene, outdir, options, model_name, progress) -> SceneResult:
    opts = options or SceneOptions()
    info = predictor.info
    t0 = time.perf_counter()
    paths = output_paths(scene, outdir, opts)
    src, sinfo = open_scene(scene)
    temps: dict[str, Path] = {}
    renamed: list[Path] = []  # outputs already in place, removed again if a later step fails
    try:
        pre_bands = from_preprocess(info.preprocess)[1] if (info.preprocess and opts.bands is None) else None
        bands = parse_bands(opts.bands if opts.bands is not None else pre_bands, scene_bands=sinfo.count,
                            model_bands=info.channels, model_band_names=info.band_names, scene=str(scene))
        stretch = resolve_stretch(src, bands, opts.stretch, info)
        plan = plan_tiling(info, opts.tile, opts.halo, opts.blend)
        stats = _write_rasters(predictor, src, sinfo, bands, stretch, plan, paths, temps, opts, progress)
        if opts.overlay:
            from fcnkit.geo.overlay import encode_overlay, overlay_image

            label_file = temps.get("labels_final", temps["labels"])
            data = encode_overlay(paths["overlay"], overlay_image(src, bands, stretch, label_file,
                                                                  opts.overlay_width))
            temps["overlay"] = temp_sibling(paths["overlay"])
            temps["overlay"].write_bytes(data)
        seconds = time.perf_counter() - t0
        outputs = [paths[k].name for k in ("labels", "probabilities", "overlay") if k in paths]
        doc = _sidecar(predictor, model_name, scene, sinfo, bands, stretch, plan, opts, stats, seconds, outputs)
        for key in [k for k in ("labels", "probabilities", "overlay") if k in paths]:
            os.replace(temps.get(f"{key}_final", temps[key]), paths[key])
            renamed.append(paths[key])
        write_text(paths["sidecar"], json.dumps(doc, indent=2) + "\n")
        renamed.clear()
    except OSError as e:
        raise OutputError(f"{outdir}: cannot write the outputs of {scene} ({e.strerror or e})") from None
    finally:
        src.close()
        for tmp in [*temps.values(), *renamed]:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return SceneResult(str(scene), [str(paths[k]) for k in paths], sinfo.rows, sinfo.cols, stats.tiles,
                       stats.skipped, seconds, list(sinfo.warnings), backend=_backend_detail(predictor))


def _write_rasters(predictor, src, sinfo, bands, stretch, plan, paths, temps, opts, progress):
    classes = predictor.info.class_names
    desc = "classes: " + ",".join(classes) if classes else "class index"
    sinks = {}
    temps["labels"] = temp_sibling(paths["labels"])
    try:
        sinks["labels"] = open_output(temps["labels"], output_profile(sinfo, 1, "uint8", LABEL_NODATA),
                                      colormap=True, description=desc)
        if opts.probabilities:
            k = _class_count(predictor)
            count = 1 if k in (1, 2) else k
            if opts.probabilities == "uint8":
                prof = output_profile(sinfo, count, "uint8", 255)
            else:  # 16-bit floats: GTiff's NBITS=16 on Float32 (GDAL < 3.11 has no Float16 type)
                prof = {**output_profile(sinfo, count, "float32", float("nan")), "nbits": 16}
            temps["probabilities"] = temp_sibling(paths["probabilities"])
            sinks["probabilities"] = open_output(temps["probabilities"], prof, description="road probability"
                                                 if count == 1 else "probability of class")
        stats = run_tiles(predictor, src, sinfo, bands, stretch, plan, sinks,
                          batch=opts.batch or predictor.batch_size, tta=opts.tta, threshold=opts.threshold,
                          probabilities=opts.probabilities, progress=progress)
        for name, dst in sinks.items():
            build_overviews(dst, "nearest" if name == "labels" else "average")
    finally:
        for dst in sinks.values():
            dst.close()
    if opts.cog:
        for name in list(sinks):
            extra = {"nbits": 16} if name == "probabilities" and opts.probabilities == "float" else None
            temps[f"{name}_final"] = to_cog(temps[name], paths[name], "nearest" if name == "labels" else "average",
                                           extra)
    return stats


def _backend_detail(predictor) -> str:
    return str(getattr(predictor, "backend_detail", predictor.backend))


def _class_count(predictor) -> int:
    classes = predictor.info.class_names
    if classes:
        return len(classes)
    return 2


def _sidecar(predictor, model_name, scene, sinfo, bands, stretch, plan, opts, stats, seconds, outputs) -> dict:
    from fcnkit import __version__

    info = predictor.info
    return {
        "fcnkit_predict": 1, "fcnkit_version": __version__, "scene": str(scene), "outputs": outputs,
        "model": model_name, "backend": predictor.backend, "backend_detail": _backend_detail(predictor),
        "device": predictor.device, "dtype": predictor.dtype,
        "classes": info.class_names, "bands": list(bands),
        "preprocess": stretch.to_json(bands, None, sinfo.nodata),
        "stretch_sample_shape": list(stretch.sample_shape) if stretch.sample_shape else None,
        "tiling": {"tile": plan.tile, "halo": plan.halo, "output_stride": plan.stride, "step": plan.step,
                   "blend": plan.blend, "receptive_field": list(info.receptive_field) if info.receptive_field
                   else None},
        "tta": opts.tta, "threshold": opts.threshold, "probabilities": opts.probabilities, "cog": opts.cog,
        "rows": sinfo.rows, "cols": sinfo.cols, "crs": sinfo.crs.to_string() if sinfo.crs else None,
        "tiles": stats.tiles, "skipped_nodata_tiles": stats.skipped, "seconds": round(seconds, 3),
        "warnings": list(sinfo.warnings),
    }


__all__ = ["SceneOptions", "SceneResult", "predict_scene", "output_paths", "is_complete", "asdict",
           "open_predictor", "notify"]


def open_predictor(model, popts: dict):
    """The :class:`fcnkit.deploy.predictor.Predictor` for ``model`` (anything ``from_path``
    accepts), with ``popts`` as its keyword options (``model_name`` is the sidecar's label of
    the model, not an option); loaded once per run (or per Ray actor).

    Raises:
        what :meth:`Predictor.from_path` raises (InputError, BackendUnavailableError, ...).
    """
    from fcnkit.deploy.predictor import Predictor

    kwargs = {k: v for k, v in popts.items() if k != "model_name"}
    return Predictor.from_path(model, **kwargs)


def notify(callback, scene, kind: str, value) -> None:
    """Call ``callback(scene, kind, value)`` when there is one (kind: done, retry, failed,
    skipped; the progress display of the CLI listens)."""
    if callback is not None:
        callback(scene, kind, value)
