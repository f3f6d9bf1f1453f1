"""``fcnkit roads connect | route | policy | crf``: decisions from a road probability map
(percolation connectivity, maximum-likelihood routes, navigation policies, dense CRF).

Thin: parse the options, call fcnkit.roads (points, percolation, routes, policy, crf), print.
Every output is computed before the first file is written, and each is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from fcnkit.cli.common import console

CrsOpt = typer.Option("map", "--crs", help="CRS of the points: 'map' (the raster's, default), "
                      "'pixel' (X = column, Y = row, 0-based) or any CRS such as EPSG:4326.")
ProbArg = typer.Argument(..., help="road probability raster: float (0..1) or uint8 (0..255) "
                         "GeoTIFF, or a 2-D .npy array")


def _point(raster, text: str, crs: str, option: str):
    from fcnkit.roads.points import parse_point, to_pixel

    return to_pixel(parse_point(text, option), raster, crs, option)


def connect_cmd(
    prob: Path = ProbArg,
    source: str = typer.Option(..., "--from", help="point A as X,Y"),
    target: str = typer.Option(..., "--to", help="point B as X,Y"),
    realisations: int = typer.Option(1000, "--realisations", "-n", help="Monte Carlo realisations"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same answer)"),
    connectivity: int = typer.Option(8, "--connectivity", help="4 or 8"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="exact variant: one "
                                              "realisation, road iff p >= T"),
    crs: str = CrsOpt,
    reach: Optional[Path] = typer.Option(None, "--reach", help="GeoTIFF of P(connected to A)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="result as JSON"),
):
    """P(A <-> B): site percolation over random realisations of the road map, with a Wilson
    95 % interval (or the exact answer on a thresholded mask with --threshold)."""
    from fcnkit.atomic import write_bytes, write_text
    from fcnkit.roads import percolation
    from fcnkit.roads.points import raster_bytes, read_probability

    raster = read_probability(prob)
    a, b = _point(raster, source, crs, "--from"), _point(raster, target, crs, "--to")
    if threshold is None:
        result, reach_map = percolation.monte_carlo(
            raster.prob, [a], [b], realisations=realisations, seed=seed,
            connectivity=connectivity, reach=reach is not None)
    else:
        result, reach_map = percolation.exact(raster.prob, [a], [b], threshold=threshold,
                                              connectivity=connectivity, reach=reach is not None)
    record = dict(result.as_dict(), source_pixel=list(a), target_pixel=list(b),
                  probability=str(prob))
    tif = None if reach_map is None else raster_bytes(reach_map, raster.transform, raster.crs)
    if output is not None:
        write_text(output, json.dumps(record, indent=2) + "\n")
    if tif is not None:
        write_bytes(reach, tif)
    where = f"{connectivity}-connectivity, A pixel {a}, B pixel {b}"
    if threshold is not None:
        verdict = "connected" if result.connected else "not connected"
        console.print(f"A <-> B on the mask p >= {threshold:g}: {verdict} ({where})", markup=False)
        return
    console.print(f"P(A <-> B) = {result.estimate:.4f}  95 % CI [{result.low:.4f}, "
                  f"{result.high:.4f}]  ({result.connected}/{result.realisations} realisations, "
                  f"{where})", markup=False)


def route_cmd(
    prob: Path = ProbArg,
    source: str = typer.Option(..., "--from", help="start as X,Y"),
    target: str = typer.Option(..., "--to", help="end as X,Y"),
    output: Path = typer.Option(..., "-o", "--output", help="route as GeoJSON"),
    crs: str = CrsOpt,
    method: str = typer.Option("mcp", "--method", help="mcp (scikit-image) or astar"),
    metric: str = typer.Option("geometric", "--metric", help="geometric (edge = distance x mean "
                               "pixel cost) or pixel (sum of pixel costs; mcp only)"),
    length_cost: float = typer.Option(1e-3, "--length-cost", help="cost added per pixel "
                                      "length (prefers the shorter of equally likely routes)"),
):
    """The maximum-likelihood route (cost -log p per pixel, 8-connected, sqrt(2) diagonals)."""
    from fcnkit.atomic import write_text
    from fcnkit.errors import InputError
    from fcnkit.roads import routes
    from fcnkit.roads.points import read_probability

    raster = read_probability(prob)
    a, b = _point(raster, source, crs, "--from"), _point(raster, target, crs, "--to")
    if method == "mcp":
        route = routes.mcp_route(raster.prob, a, b, length_cost=length_cost, metric=metric)
    elif method == "astar":
        if metric != "geometric":
            raise InputError("--method astar solves the geometric metric; leave out --metric")
        route = routes.astar_route(raster.prob, a, b, length_cost=length_cost)
    else:
        raise InputError(f"--method must be mcp or astar, not {method}")
    route.length_m = routes.route_length_m(route.pixels, raster.transform, raster.crs)
    write_text(output, json.dumps(routes.route_geojson(route, raster.transform, raster.crs)) + "\n")
    metres = "n/a (no CRS)" if route.length_m is None else f"{route.length_m:.1f} m"
    console.print(f"route: {len(route.pixels)} pixels, length {metres}, likelihood "
                  f"{route.likelihood:.4g} (log {route.log_likelihood:.3f}), cost "
                  f"{route.cost:.3f} -> {output}", markup=False)


def policy_cmd(
    prob: Path = ProbArg,
    goal: str = typer.Option(..., "--goal", help="goal as X,Y"),
    output: Path = typer.Option(..., "-o", "--output", help="GeoTIFF of actions (uint8: 0 up, "
                                "1 right, 2 down, 3 left, 255 goal)"),
    gamma: float = typer.Option(0.99, "--gamma", help="discount"),
    slip: bool = typer.Option(False, "--slip", help="a failed move slips sideways instead of "
                              "staying"),
    step_cost: float = typer.Option(0.01, "--step-cost", help="cost of every step"),
    goal_reward: float = typer.Option(1.0, "--goal-reward", help="reward on entering the goal"),
    block: int = typer.Option(1, "--block", help="states are k x k pixel blocks"),
    block_reduce: str = typer.Option("max", "--block-reduce", help="max or mean"),
    method: str = typer.Option("policy", "--method", help="policy (iteration) or value (iteration)"),
    value: Optional[Path] = typer.Option(None, "--value", help="GeoTIFF of the state values"),
    png: Optional[Path] = typer.Option(None, "--png", help="PNG with arrows over the map"),
    crs: str = CrsOpt,
):
    """Navigation policy to a goal: the gridworld MDP solved by policy or value iteration."""
    from fcnkit.atomic import write_bytes
    from fcnkit.errors import InputError
    from fcnkit.roads import policy as pol
    from fcnkit.roads.points import raster_bytes, read_probability

    raster = read_probability(prob)
    g = _point(raster, goal, crs, "--goal")
    grid = pol.block_probabilities(raster.prob, block, block_reduce)
    cell = (g[0] // block, g[1] // block)
    world = pol.Gridworld(grid, cell, gamma=gamma, step_cost=step_cost,
                          goal_reward=goal_reward, slip=slip)
    if method not in ("policy", "value"):
        raise InputError(f"--method must be policy or value, not {method}")
    solve = pol.policy_iteration if method == "policy" else pol.value_iteration
    sol = solve(world)
    transform = raster.transform @ raster.transform.scale(block) if block > 1 else raster.transform
    files = [(output, raster_bytes(sol.actions, transform, raster.crs, pol.GOAL_ACTION))]
    if value is not None:
        files.append((value, raster_bytes(sol.values.astype("float32"), transform, raster.crs)))
    if png is not None:
        files.append((png, pol.quiver_png(grid, sol.actions, cell)))
    for path, data in files:
        write_bytes(path, data)
    state = "converged" if sol.converged else "NOT converged (sweep limit reached)"
    console.print(f"{method} iteration {state}: {sol.iterations} iterations, {sol.sweeps} sweeps "
                  f"over {grid.shape[0]} x {grid.shape[1]} states; goal cell {cell} -> {output}",
                  markup=False)


def crf_cmd(
    prob: Path = ProbArg,
    image: Path = typer.Option(..., "--image", help="the image (GeoTIFF) on the same grid"),
    output: Path = typer.Option(..., "-o", "--output", help="mask GeoTIFF (uint8 255 road, 0 not)"),
    bands: Optional[str] = typer.Option(None, "--bands", help="image bands for the appearance "
                                        "kernel, 1-based (default 5,3,2 for 8 bands, else 1,2,3)"),
    probabilities: Optional[Path] = typer.Option(None, "--probabilities",
                                                 help="also the CRF road marginals (float32)"),
    iterations: int = typer.Option(5, "--iterations", help="mean-field iterations"),
    theta_alpha: float = typer.Option(80.0, "--theta-alpha", help="appearance kernel width, px"),
    theta_beta: float = typer.Option(13.0, "--theta-beta", help="appearance value width (0..255)"),
    w_alpha: float = typer.Option(10.0, "--w-alpha", help="appearance kernel weight"),
    theta_gamma: float = typer.Option(3.0, "--theta-gamma", help="smoothness kernel width, px"),
    w_gamma: float = typer.Option(3.0, "--w-gamma", help="smoothness kernel weight"),
    tile: int = typer.Option(2048, "--tile", help="window size in pixels (a halo of 3 theta "
                             "is added; a 1300 x 1300 SpaceNet tile is one window)"),
):
    """Dense CRF (Krähenbühl & Koltun 2011) over the stretched image: mask out, speckles off.
    Both rasters are GeoTIFFs on one grid; the scene is processed window by window."""
    from fcnkit.errors import InputError
    from fcnkit.roads import crf
    from fcnkit.roads.crf_scene import crf_scene

    try:
        band_list = None if bands is None else [int(b) for b in bands.split(",")]
    except ValueError:
        raise InputError(f"--bands '{bands}': expected 1-based band numbers such as 5,3,2") from None
    params = crf.CrfParams(theta_gamma, w_gamma, theta_alpha, theta_beta, w_alpha, iterations)
    after, before = crf_scene(prob, image, output, params, bands=band_list, tile=tile,
                              probabilities_path=probabilities)
    console.print(f"CRF: {after} road pixels (threshold 0.5 before: {before}) -> {output}",
                  markup=False)


def register(roads_app: typer.Typer) -> None:
    """Add ``connect``, ``route``, ``policy`` and ``crf`` to the ``roads`` group."""
    roads_app.command("connect")(connect_cmd)
    roads_app.command("route")(route_cmd)
    roads_app.command("policy")(policy_cmd)
    roads_app.command("crf")(crf_cmd)
