"""Writing a compiled net to a directory and loading it back (``fcnkit.load``).

A compiled-model directory holds:

- ``net.prototxt``: the upgraded (V2) prototxt, all phases;
- ``weights.safetensors``: every parameter and persistent buffer, keyed ``layer.name``;
- ``model.py``: the generated torch.fx code (for reading; loading does not execute it);
- ``fcnkit.json``: phase, stages, level, input shapes, deploy flag, fcnkit version, and
  ``modules``: the table {submodule name: Caffe layer name} (names in ``model.py`` and
  ``weights.safetensors`` are sanitised identifiers; the Caffe names live only here, as data).

Loading recompiles the prototxt (without running fillers: every tensor comes from the
safetensors file) and loads the safetensors file: nothing is unpickled and no stored code
is executed; ``fcnkit.json`` is validated field by field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from fcnkit.atomic import atomic_directory
from fcnkit.errors import InputError, OutputError, WeightsError

META = "fcnkit.json"


def save_compiled(compiled, directory: str | Path, onnx_path: str | None = None, *,
                  force: bool = False, companions=None) -> Path:
    """Write ``compiled`` (a CompiledNet) to ``directory`` atomically; returns the path.

    An existing ``directory`` is replaced only when it is empty or an earlier fcnkit output
    (it holds ``fcnkit.json``), or when ``force`` is true. ``companions`` ({complete
    temporary file: final path}, e.g. the ONNX file of ``compile --onnx``) are committed
    with the directory: both or neither (:func:`fcnkit.atomic.atomic_directory`).
    ``onnx_path`` is unused (kept for callers of the earlier signature).

    Raises:
        OutputExistsError: ``directory`` is a file, or a directory of something else.
        OutputError: it cannot be written (a full disk, no permission; the message names
            ``directory``).
    """
    from fcnkit import __version__

    tensors = {k: v.detach().cpu().contiguous() for k, v in compiled.module.state_dict().items()}
    return write_model_dir(
        directory, compiled.net.param, tensors, _meta(compiled, __version__),
        header=f"written by fcnkit {__version__} (upgraded to V2)",
        files={"model.py": _model_py(compiled, __version__)},
        force=force, companions=companions)


def write_model_dir(directory: str | Path, param, tensors: Mapping[str, Any], meta: Mapping[str, Any],
                    *, header: str, files: Mapping[str, str | Callable[[Path], None]] | None = None,
                    weights_metadata: Mapping[str, str] | None = None, force: bool = False,
                    companions=None) -> Path:
    """Write a model directory atomically (the one writer of ``compile -o DIR`` and
    ``surgery -o OUTDIR``): ``net.prototxt`` (``param``, a V2 NetParameter, under the comment
    ``header``), ``weights.safetensors`` (``tensors``: {module.param: torch tensor or NumPy
    array, torch layouts}, with ``weights_metadata`` in its header), every entry of ``files``
    ({file name: its text, or a function writing that path, whose errors propagate as
    raised}) and last ``fcnkit.json``
    (``meta`` as JSON), through :func:`fcnkit.atomic.atomic_directory`'s crash-safe swap:
    the whole directory appears, or the earlier one stays. Existing ``directory``,
    ``force`` and ``companions``: as in :func:`save_compiled`.

    Raises:
        OutputExistsError: ``directory`` is a file, or a directory of something else.
        OutputError: it cannot be written (a full disk, no permission; the message names
            ``directory``).
    """
    from fcnkit import caffe

    directory = Path(directory)
    with atomic_directory(directory, marker=META, force=force, companions=companions) as tmp:
        writers = [lambda: caffe.write_prototxt(tmp / "net.prototxt", param, header=header),
                   lambda: _save_tensors(tmp / "weights.safetensors", tensors, weights_metadata)]
        writers += [(lambda n=name, c=content: (tmp / n).write_text(c, encoding="utf-8"))
                    for name, content in (files or {}).items() if not callable(content)]
        for write in writers:
            _written_or_output_error(write, directory)
        for name, write_file in (files or {}).items():
            if callable(write_file):  # the caller's writer: what it raises is the caller's
                write_file(tmp / name)
        _written_or_output_error(lambda: (tmp / META).write_text(
            json.dumps(dict(meta), indent=2) + "\n", encoding="utf-8"), directory)
    return directory


def _written_or_output_error(write: Callable[[], Any], directory: Path) -> None:
    """Run ``write``; a failure becomes an OutputError naming ``directory`` (not its
    temporary sibling).

    Raises:
        OutputError: the file cannot be written (the reason, then what to check).
    """
    from safetensors import SafetensorError

    try:
        write()
    except (OSError, SafetensorError, OutputError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        m = re.search(r"cannot write it \((.*?)\);", reason)  # an OutputError naming tmp/
        reason = m.group(1) if m else reason
        raise OutputError(f"{directory}: cannot write it ({reason}); check the free space "
                          "and the permissions of its folder") from None


def _save_tensors(path: Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None) -> None:
    """safetensors file of torch tensors (safetensors.torch) or NumPy arrays (.numpy)."""
    if any(type(v).__module__.startswith("torch") for v in tensors.values()):
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata else None)
    from fcnkit.atomic import make_public

    make_public(path)  # safetensors creates the file 0600


def _model_py(compiled, version: str) -> str:
    net = compiled.net
    # repr(): a name with a newline would otherwise end the comment and start code
    return (f"# Generated by fcnkit {version} from {str(net.path or net.name)!r}: torch.fx code of the\n"
            "# compiled net, for reading. fcnkit.load() rebuilds the module from net.prototxt.\n"
            + compiled.module.code)


def _meta(compiled, version: str) -> dict:
    state = compiled.net.state
    return {
        "fcnkit_version": version,
        "name": compiled.net.name,
        "source": compiled.net.path,
        "phase": state.phase_name,
        "level": state.level,
        "stages": list(state.stages),
        "deploy": compiled.deploy,
        "input_shapes": {k: list(v) for k, v in compiled.input_shapes.items()},
        "inputs": compiled.inputs,
        "outputs": compiled.outputs,
        "modules": compiled.layer_of_module,
    }


def is_compiled_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory written by :func:`save_compiled`."""
    return (Path(path) / META).is_file()


def load(directory: str | Path):
    """Load a compiled-model directory written by ``fcnkit compile -o DIR``.

    Returns:
        CompiledNet with the saved weights.

    Raises:
        InputError: not a compiled-model directory, or its fcnkit.json is damaged.
        CaffeFormatError, NetDefinitionError: its net.prototxt is damaged.
        WeightsError: the weights file is damaged or does not fit the net.
    """
    from safetensors.torch import load_file

    from fcnkit.compile.builder import compile_net
    from fcnkit.graph import NetState, load_net

    directory = Path(directory)
    meta = read_meta(directory)
    state = NetState.make(meta["phase"], meta["level"], meta["stages"])
    net = load_net(directory / "net.prototxt", state)
    compiled = compile_net(net, None, meta["input_shapes"], deploy=meta["deploy"], fill_missing=False)
    modules = meta.get("modules")
    if modules is not None and modules != compiled.layer_of_module:
        raise InputError(f"{directory / META}: its 'modules' table does not match net.prototxt "
                         "(edited by hand, or written by another fcnkit version); recompile "
                         "with `fcnkit compile NET -o DIR`")
    weights = directory / "weights.safetensors"
    try:
        state_dict = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise WeightsError(f"{weights}: cannot be read as safetensors ({e}); recompile with "
                           "`fcnkit compile NET -o DIR`") from None
    try:
        # assign: the file's tensors become the parameters (no copy into the meta-device
        # placeholders compile_net built)
        missing, unexpected = compiled.module.load_state_dict(state_dict, strict=False, assign=True)
    except RuntimeError as e:  # shapes that differ from net.prototxt's
        raise WeightsError(f"{weights}: does not fit net.prototxt ({_first_line(e)}); "
                           "recompile with `fcnkit compile NET -o DIR`") from None
    if missing or unexpected:
        raise WeightsError(f"{weights}: does not fit net.prototxt "
                           f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    compiled.weights.loaded = list(compiled.weights.initialised)
    compiled.weights.initialised = {}
    return compiled


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:3])[:300]


def read_meta(directory: Path) -> dict:
    """Read and validate ``directory/fcnkit.json``: a JSON object with ``phase`` (TRAIN or
    TEST), ``level`` (an integer), ``stages`` (strings), ``deploy`` (a boolean),
    ``input_shapes`` ({blob: 1 to 8 positive dims, each < 2**31}) and optionally ``modules``
    ({identifier: layer name}); missing fields take their defaults; ``source`` (the prototxt
    compiled) is returned as stored, None unless it is a string.

    Raises:
        InputError: not a compiled-model directory, or a field is damaged (the message
            names the file and the field).
    """
    if not is_compiled_dir(directory):
        raise InputError(f"{directory} is not a compiled fcnkit model directory (no {META}); "
                         "create one with `fcnkit compile NET -o DIR`")
    path = directory / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as e:
        raise InputError(f"{path}: damaged ({type(e).__name__}: {e}); recompile with "
                         "`fcnkit compile NET -o DIR`") from None

    def bad(field: str, want: str):
        return InputError(f"{path}: damaged: '{field}' must be {want}, got "
                          f"{json.dumps(meta.get(field))[:80]}; recompile with `fcnkit compile NET -o DIR`")

    out = {"phase": meta.get("phase", "TEST"), "level": meta.get("level", 0),
           "stages": meta.get("stages", []), "deploy": meta.get("deploy", False),
           "modules": meta.get("modules"), "source": meta.get("source")}
    if out["phase"] not in ("TRAIN", "TEST"):
        raise bad("phase", '"TRAIN" or "TEST"')
    if type(out["level"]) is not int or abs(out["level"]) >= 2**31:
        raise bad("level", "an integer")
    if not isinstance(out["stages"], list) or not all(isinstance(x, str) for x in out["stages"]):
        raise bad("stages", "a list of strings")
    if not isinstance(out["deploy"], bool):
        raise bad("deploy", "true or false")
    modules = out["modules"]
    if modules is not None and not (isinstance(modules, dict)
                                    and all(isinstance(v, str) for v in modules.values())):
        raise bad("modules", "an object of layer names")
    shapes = meta.get("input_shapes", {})
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and 1 <= len(v) <= 8
            and all(type(d) is int and 0 < d < 2**31 for d in v) for v in shapes.values()):
        raise bad("input_shapes", "an object of shapes (lists of 1 to 8 positive integers)")
    out["input_shapes"] = {k: tuple(v) for k, v in shapes.items()}
    if not isinstance(out["source"], str):
        out["source"] = None
    return out
