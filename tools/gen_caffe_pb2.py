#!/usr/bin/env python
"""Regenerate fcnkit/caffe/caffe_pb2.py and caffe_forks_pb2.py from schemas/*.proto.

Usage:
    python tools/gen_caffe_pb2.py            # rewrite fcnkit/caffe/caffe_pb2.py
    python tools/gen_caffe_pb2.py --out DIR  # write DIR/caffe_pb2.py instead (used by tests)

Runs ``python -m grpc_tools.protoc`` (pip install grpcio-tools) from the repository root with
``-I schemas`` so that the descriptor is registered as "caffe.proto" exactly as in the
committed module. The generated code checks the protobuf runtime version it was generated
for (see the ValidateProtobufRuntimeVersion call in its header); keep the ``protobuf>=``
bound in pyproject.toml at least that version when regenerating with a newer grpcio-tools.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = "schemas"
SCHEMA = "caffe.proto"
FORKS = "caffe_forks.proto"
#: protoc writes a top-level ``import caffe_pb2``; inside the package it must be absolute.
_PROTOC_IMPORT = "import caffe_pb2 as caffe__pb2"
_PACKAGE_IMPORT = "from fcnkit.caffe import caffe_pb2 as caffe__pb2"
DEFAULT_OUT = ROOT / "fcnkit" / "caffe"


def generate(out_dir: Path = DEFAULT_OUT) -> Path:
    """Generate ``caffe_pb2.py`` and ``caffe_forks_pb2.py`` into ``out_dir``; return the
    path of ``caffe_pb2.py``.

    Raises:
        RuntimeError: grpc_tools is missing or protoc failed (its output is in the message).
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{SCHEMA_DIR}",
           f"--python_out={out_dir}", f"{SCHEMA_DIR}/{SCHEMA}", f"{SCHEMA_DIR}/{FORKS}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    forks = out_dir / "caffe_forks_pb2.py"
    text = forks.read_text()
    if _PROTOC_IMPORT not in text:
        raise RuntimeError(f"protoc's output {forks} has no line '{_PROTOC_IMPORT}' to rewrite")
    forks.write_text(text.replace(_PROTOC_IMPORT, _PACKAGE_IMPORT))
    return out_dir / "caffe_pb2.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: fcnkit/caffe)")
    args = parser.parse_args(argv)
    try:
        path = generate(args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
