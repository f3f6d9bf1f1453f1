"""Commands that stand in for Caffe's own tools: draw (python/draw_net.py), time
(``caffe time``), upgrade (upgrade_net_proto_text / upgrade_net_proto_binary), and the
shell completion script."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fcnkit.cli.common import (InputShapeOpt, LevelOpt, PhaseOpt, StageOpt, console,
                               input_shapes_cli, load_net_cli, print_table)
from fcnkit.errors import InputError

SHELLS = ("bash", "zsh", "fish")


def draw_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    out: Path = typer.Option(..., "-o", "--output", help="net.dot (always), net.svg / net.png / "
                             "net.pdf (need Graphviz's `dot`)"),
    rankdir: str = typer.Option("LR", "--rankdir", help="LR (left to right, Caffe's default), "
                                "TB, BT or RL"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
):
    """Draw the net like Caffe's draw_net.py (layers as boxes, blobs as octagons), with each
    layer's scale factor and offset; Crop layers gold, red when their offset is wrong."""
    from fcnkit.analysis.draw import IMAGE_FORMATS, net_to_dot, render_dot
    from fcnkit.atomic import write_bytes, write_text
    from fcnkit.graph import NetState, load_net

    ext = out.suffix.lower().lstrip(".")
    if ext not in ("dot", "gv", *IMAGE_FORMATS):
        raise InputError(f"-o {out}: the extension must be .dot, .gv, "
                         f"{', '.join('.' + f for f in IMAGE_FORMATS)}")
    net = load_net(net_path, NetState.make(phase, level, stage or ()), allow_unsupported=True)
    dot = net_to_dot(net, rankdir)
    if ext in ("dot", "gv"):
        write_text(out, dot)
    else:
        write_bytes(out, render_dot(dot, ext))
    console.print(f"wrote {out} ({len(net.layers)} layers, phase {net.state.phase_name})",
                  markup=False)


def time_cmd(
    net_path: Path = typer.Argument(..., help="prototxt"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="caffemodel (default: fillers; "
                                           "times do not depend on the values)"),
    input_shape: Optional[List[str]] = InputShapeOpt,
    backend: str = typer.Option("torch", "--backend", help="torch or onnxruntime"),
    iterations: int = typer.Option(50, "--iterations", "-n", help="timed forward passes"),
    warmup: int = typer.Option(5, "--warmup", help="forward passes run first and not counted"),
    device: str = typer.Option("cpu", "--device", help="torch backend: cpu or cuda"),
    phase: str = PhaseOpt, stage: Optional[List[str]] = StageOpt, level: int = LevelOpt,
):
    """Per-layer and total forward times, like `caffe time` (random inputs, warm-up first)."""
    from fcnkit.compile import compile_net
    from fcnkit.deploy.timing import time_forward

    net = load_net_cli(net_path, phase, stage, level)
    # the path, not a CaffeModel: compile_net then holds the weights once (no copy)
    compiled = compile_net(net, weights or None, input_shapes_cli(input_shape), deploy=True)
    result = time_forward(compiled, backend, iterations, warmup, device=device)
    rows = [[r.layer, r.type, f"{r.median_ms:.4f}", f"{r.mean_ms:.4f}"] for r in result.layers]
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result.input_shapes.items())
    print_table(f"{net.name or net_path.name}: forward times ({result.backend}, {shapes})",
                ["layer", "type", "median ms", "mean ms"], rows)
    console.print(f"total forward: median {result.total_median_ms:.4f} ms, mean "
                  f"{result.total_mean_ms:.4f} ms over {result.iterations} passes "
                  f"({result.warmup} warm-up passes not counted)", markup=False)


def upgrade_cmd(
    source: Path = typer.Argument(..., help="V0/V1/V2 prototxt, or caffemodel"),
    out: Path = typer.Argument(..., help="the V2 file to write (same kind as the input)"),
):
    """Upgrade a net to V2, like Caffe's upgrade_net_proto_text (prototxt) and
    upgrade_net_proto_binary (caffemodel)."""
    from fcnkit.caffe.upgrade_files import upgrade_file

    if out.resolve() == source.resolve():
        raise InputError(f"{out}: the output must not be the input (write a new file)")
    result = upgrade_file(source, out)
    for note in result.notes:
        console.print(f"  {note}", markup=False, soft_wrap=True)
    console.print(f"wrote {out} ({result.kind}, {result.source_format} -> V2, "
                  f"{result.layers} layers)", markup=False)


def completion_cmd(shell: str = typer.Argument(..., help="bash, zsh or fish")):
    """Print the shell completion script; e.g. `fcnkit completion bash > ~/.fcnkit-complete.bash`
    and `source` it from ~/.bashrc (zsh: ~/.zshrc; fish: ~/.config/fish/completions/fcnkit.fish)."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise InputError(f"the shell must be one of {', '.join(SHELLS)}, got '{shell}'")
    typer.echo(get_completion_script(prog_name="fcnkit", complete_var="_FCNKIT_COMPLETE",
                                     shell=shell))


def register(app: typer.Typer) -> None:
    """Add draw, time, upgrade and completion to the ``fcnkit`` app."""
    app.command("draw")(draw_cmd)
    app.command("time")(time_cmd)
    app.command("upgrade")(upgrade_cmd)
    app.command("completion")(completion_cmd)
