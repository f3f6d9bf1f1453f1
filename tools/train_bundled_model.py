"""Train the bundled road model (fcnkit/zoo/weights/tiramisu56_8band.*) on synthetic scenes.

Stages (run all, or one with --stage):
  data   seeded synthetic 8-band scenes (fcnkit.geo.synth.make_scene): a training folder
         (split 70/15/15 by `fcnkit train`) and a separate held-out folder;
  train  solver.prototxt for the zoo's tiramisu56_8band train_val; `fcnkit train` (CLI);
  eval   the last snapshot on the held-out scenes through `fcnkit predict`: road IoU (pixels)
         and APLS (fcnkit.roads: mask -> graph -> APLS against the synthetic road GeoJSON);
  ship   copies the caffemodel and its preprocess JSON into fcnkit/zoo/weights/ and writes
         the provenance JSON (data, seeds, solver, iterations, time, CPU, held-out scores).

    nice -n 10 python tools/train_bundled_model.py --work /tmp/bundle [--stage train]

Synthetic data only: the figures it prints say nothing about real imagery.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchlib.py
from benchlib import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiramisu56_8band"
# The recipe (recorded in the provenance JSON; change here, retrain, re-ship).
RECIPE = {
    "generator": "fcnkit.geo.synth.make_scene",
    "scene_size_px": 256, "gsd_m": 0.6, "roads": 4, "buildings": 12,
    "train_scenes": 24, "train_seed0": 100,     # scene k has seed train_seed0 + k, k = 1..N
    "heldout_scenes": 4, "heldout_seed0": 9000,
    "chip_px": 64, "batch": 4, "width": "4m", "percentiles": [2.0, 90.0],
    "solver": {"type": "Adam", "base_lr": 0.001, "momentum": 0.9, "momentum2": 0.999,
               "lr_policy": "fixed", "weight_decay": 0.0001, "random_seed": 1},
    "max_iter": 400, "snapshot": 25, "test_interval": 100, "test_iter": 4,
    "budget_s": 1500,   # 2 loaded CPU cores: about 7 s per iteration, so the budget ends it
    "predict_tile": 256,   # with --halo 0: one forward per 256 px held-out scene
}


def python_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def make_data(work: Path) -> None:
    """Write work/train/{images,labels,geojson} and work/heldout/{images,labels,geojson}."""
    from fcnkit.geo.synth import make_scene

    r = RECIPE
    for part, count, seed0 in (("train", r["train_scenes"], r["train_seed0"]),
                               ("heldout", r["heldout_scenes"], r["heldout_seed0"])):
        for k in range(1, count + 1):
            make_scene(work / part / "images" / f"SYN_PS-MS_img{k}.tif",
                       work / part / "geojson" / f"SYN_geojson_roads_img{k}.geojson",
                       r["scene_size_px"], seed0 + k, gsd=r["gsd_m"], roads=r["roads"],
                       buildings=r["buildings"],
                       path_label=work / part / "labels" / f"SYN_label_img{k}.tif")


def solver_text(work: Path) -> str:
    s, r = RECIPE["solver"], RECIPE
    return (f'net: "{ROOT / "prototxt" / (NAME + ".train_val.prototxt")}"\n'
            f'type: "{s["type"]}" base_lr: {s["base_lr"]} momentum: {s["momentum"]} '
            f'momentum2: {s["momentum2"]} lr_policy: "{s["lr_policy"]}" '
            f'weight_decay: {s["weight_decay"]}\n'
            f'max_iter: {r["max_iter"]} snapshot: {r["snapshot"]} '
            f'test_interval: {r["test_interval"]} test_iter: {r["test_iter"]} '
            f'test_initialization: false display: 10 average_loss: 10\n'
            f'random_seed: {s["random_seed"]} snapshot_prefix: "{work / "snap" / NAME}"\n')


def train(work: Path, budget_s: float) -> float:
    """Run `fcnkit train`, interrupted (SIGINT: snapshot and stop, as Caffe) when it runs
    past ``budget_s`` seconds; returns the wall time (seconds)."""
    (work / "snap").mkdir(parents=True, exist_ok=True)
    solver = work / "solver.prototxt"
    solver.write_text(solver_text(work))
    r = RECIPE
    cmd = [sys.executable, "-m", "fcnkit", "train", str(solver),
           "--images", str(work / "train" / "images"), "--labels", str(work / "train" / "labels"),
           "--chip", str(r["chip_px"]), "--batch", str(r["batch"]), "--width", r["width"],
           "--workers", "1", "--csv", str(work / "train_log.csv"), "--no-progress"]
    start = time.time()
    proc = subprocess.Popen(cmd, env=python_env())
    try:
        proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:  # the budget is spent: Caffe's SIGINT, snapshot, stop
        print(f"training budget of {budget_s:.0f} s spent: SIGINT (snapshot, then stop)")
        proc.send_signal(signal.SIGINT)
        proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"fcnkit train failed (exit status {proc.returncode})")
    elapsed = time.time() - start
    (work / "train_time.json").write_text(json.dumps({"seconds": elapsed}))
    return elapsed


def last_snapshot(work: Path) -> tuple[Path, int]:
    """The snapshot caffemodel with the highest iteration, and that iteration."""
    snaps = sorted(((int(p.stem.rsplit("_iter_", 1)[1]), p)
                    for p in (work / "snap").glob(f"{NAME}_iter_*.caffemodel")))
    if not snaps:
        raise SystemExit(f"no snapshot in {work / 'snap'}: run the train stage first")
    return snaps[-1][1], snaps[-1][0]


def predict(work: Path, model: list[str], out: Path) -> None:
    """`fcnkit predict MODEL... heldout/images -o out --stretch model` (the CLI, as a user)."""
    cmd = [sys.executable, "-m", "fcnkit", "predict", *model, str(work / "heldout" / "images"),
           "-o", str(out), "--stretch", "model", "--tile", str(RECIPE["predict_tile"]), "--halo", "0"]
    subprocess.run(cmd, check=True, env=python_env())


def predicted_graph(mask, transform, crs):
    """APLS graph of a predicted road mask: fcnkit.roads' graph step (skeleton, cleaning:
    WKT_Pix lines) georeferenced through the scene's affine and CRS, as `fcnkit roads score`
    does for a mask (node ids from 1000)."""
    from fcnkit.roads.apls_graph import graph_from_wkt_pix
    from fcnkit.roads.score import gsd_metres, mask_wkt_pix

    lines = mask_wkt_pix(mask, gsd_metres(transform, crs))
    return graph_from_wkt_pix(lines, transform, crs=crs, first_node_id=1000)


def score_predictions(work: Path, out: Path) -> dict:
    """Road IoU (pooled over the held-out scenes' pixels, and per scene) and APLS
    (fcnkit.roads.apls with SpaceNet's defaults: truth GeoJSON graph against the graph of
    the predicted mask), mean over scenes."""
    import numpy as np
    import rasterio

    from fcnkit.roads.apls import apls
    from fcnkit.roads.apls_graph import graph_from_lines
    from fcnkit.roads.vector import read_road_lines

    inter = union = 0
    per_scene = []
    for k in range(1, RECIPE["heldout_scenes"] + 1):
        with rasterio.open(work / "heldout" / "labels" / f"SYN_label_img{k}.tif") as src:
            truth = src.read(1) > 0
        with rasterio.open(out / f"SYN_PS-MS_img{k}_labels.tif") as src:
            pred, transform, crs = src.read(1) == 1, src.transform, src.crs
        i, u = int(np.logical_and(truth, pred).sum()), int(np.logical_or(truth, pred).sum())
        inter, union = inter + i, union + u
        gt = graph_from_lines(read_road_lines(
            work / "heldout" / "geojson" / f"SYN_geojson_roads_img{k}.geojson"), first_node_id=0)
        result = apls(gt, predicted_graph(pred, transform, crs))
        # the same mask -> graph route on the true label: the ceiling of this APLS route
        ceiling = apls(gt, predicted_graph(truth, transform, crs)).apls
        per_scene.append({"scene": k, "seed": RECIPE["heldout_seed0"] + k,
                          "road_iou": i / u if u else float("nan"), "apls": result.apls,
                          "apls_of_true_mask": ceiling, "apls_notes": "; ".join(result.notes)})
    return {"road_iou": inter / union, "apls_mean": float(np.mean([r["apls"] for r in per_scene])),
            "apls_of_true_mask_mean": float(np.mean([r["apls_of_true_mask"] for r in per_scene])),
            "per_scene": per_scene}


def evaluate(work: Path) -> dict:
    """Predict the held-out scenes with the last snapshot (deploy net + caffemodel +
    its preprocess JSON) and score them; written to work/eval.json."""
    snap, it = last_snapshot(work)
    out = work / f"pred_iter_{it}"
    predict(work, [str(ROOT / "prototxt" / f"{NAME}.deploy.prototxt"), "-w", str(snap)], out)
    result = {"snapshot": snap.name, "iterations": it, **score_predictions(work, out)}
    (work / "eval.json").write_text(json.dumps(result, indent=1))
    return result


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(work: Path) -> None:
    """Copy the last snapshot and its preprocess JSON into fcnkit/zoo/weights/ and write
    the provenance JSON (everything needed to regenerate and to check the files)."""
    import torch

    from fcnkit import atomic

    snap, it = last_snapshot(work)
    evaluation = json.loads((work / "eval.json").read_text())
    if evaluation["iterations"] != it:
        raise SystemExit(f"eval.json is for iteration {evaluation['iterations']}, the last "
                         f"snapshot is {it}: run the eval stage again")
    dest = ROOT / "fcnkit" / "zoo" / "weights"
    dest.mkdir(parents=True, exist_ok=True)
    model = dest / f"{NAME}.caffemodel"
    atomic.write_bytes(model, snap.read_bytes())
    pre = snap.with_name(snap.name[:-len(".caffemodel")] + ".preprocess.json")
    atomic.write_text(dest / f"{NAME}.preprocess.json", pre.read_text())
    seconds = json.loads((work / "train_time.json").read_text())["seconds"]
    split = json.loads((work / "snap" / f"{NAME}.split.json").read_text())
    provenance = {
        "fcnkit_weights": 1, "model": NAME,
        "trained_on": "SYNTHETIC 8-band WorldView-3-like scenes only (fcnkit.geo.synth); "
                      "no real imagery: scores on real scenes are unknown",
        "caffemodel": model.name, "caffemodel_sha256": sha256(model),
        "caffemodel_bytes": model.stat().st_size, "preprocess": f"{NAME}.preprocess.json",
        "train_val": f"prototxt/{NAME}.train_val.prototxt",
        "recipe": RECIPE, "split": split, "solver_prototxt": solver_text(Path("WORK")).replace(str(ROOT) + os.sep, ""),
        "iterations": it, "training_seconds": round(seconds, 1), "cpu": cpu_model(),
        "stopped": ("max_iter reached" if it >= RECIPE["max_iter"] else
                    "SIGINT when the training budget was spent (snapshot at that iteration)"),
        "torch": torch.__version__, "command": "tools/train_bundled_model.py",
        "heldout": {"scenes": RECIPE["heldout_scenes"], "seeds": [
            RECIPE["heldout_seed0"] + k for k in range(1, RECIPE["heldout_scenes"] + 1)],
            "predict": f"fcnkit predict {NAME} --stretch model --tile {RECIPE['predict_tile']} --halo 0",
            "road_iou": round(evaluation["road_iou"], 4), "apls": round(evaluation["apls_mean"], 4),
            "apls_of_true_mask": round(evaluation["apls_of_true_mask_mean"], 4),
            "apls_route": "truth GeoJSON graph vs graph of the predicted mask (fcnkit.roads "
                          "mask -> skeleton -> WKT_Pix -> scene affine and CRS -> graph, as "
                          "`fcnkit roads score`), fcnkit.roads.apls.apls defaults; "
                          "apls_of_true_mask: the same route on the true label mask",
            "per_scene": evaluation["per_scene"]},
    }
    atomic.write_text(dest / f"{NAME}.json", json.dumps(provenance, indent=1) + "\n")
    print(f"shipped {model} ({model.stat().st_size} bytes, iteration {it})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (scenes, snapshots)")
    parser.add_argument("--budget", type=float, default=RECIPE["budget_s"],
                        help="training wall-clock budget in seconds (then SIGINT)")
    parser.add_argument("--stage", choices=("all", "data", "train", "eval", "ship"), default="all")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.stage in ("all", "data"):
        make_data(work)
    if args.stage in ("all", "train"):
        print(f"training took {train(work, args.budget):.0f} s")
    if args.stage in ("all", "eval"):
        print(json.dumps(evaluate(work), indent=1))
    if args.stage in ("all", "ship"):
        ship(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
