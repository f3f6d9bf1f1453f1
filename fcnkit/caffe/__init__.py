"""Caffe files: the schema, net prototxt / solver text I/O, caffemodel binary I/O, upgrades.

Everything fcnkit reads from Caffe comes through here as protobuf messages of
``fcnkit.caffe.caffe_pb2`` (generated from ``schemas/caffe.proto``), upgraded to V2:

- :func:`read_prototxt` / :func:`parse_prototxt` -> :class:`NetSource` (net + layer lines);
- :func:`read_caffemodel` -> :class:`CaffeModel` (net + float32 blobs by layer name);
- :func:`read_solver` -> ``SolverParameter``;
- :func:`write_prototxt` / :func:`format_prototxt` and :func:`write_caffemodel` write V2 files
  atomically;
- :func:`blob_to_array` / :func:`array_to_blob` convert single in-memory blobs.

This package knows nothing of torch or of the graph; it only reads and writes files.
"""

from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.blobs import array_to_blob, blob_to_array
from fcnkit.caffe.caffemodel import CaffeModel, read_caffemodel, write_caffemodel
from fcnkit.caffe.prototxt import (NetSource, format_prototxt, parse_prototxt, read_prototxt,
                                   write_prototxt)
from fcnkit.caffe.solver import parse_solver, read_solver

__all__ = [
    "caffe_pb2",
    "NetSource",
    "parse_prototxt",
    "read_prototxt",
    "format_prototxt",
    "write_prototxt",
    "CaffeModel",
    "read_caffemodel",
    "write_caffemodel",
    "read_solver",
    "parse_solver",
    "blob_to_array",
    "array_to_blob",
]
