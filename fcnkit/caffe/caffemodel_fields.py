"""Field numbers of the caffemodel wire format that fcnkit reads and writes by hand
(src/caffe/proto/caffe.proto: NetParameter, LayerParameter, V1/V0LayerParameter,
BlobProto, BlobShape); shared by :mod:`fcnkit.caffe.caffemodel` (reading) and
:mod:`fcnkit.caffe.caffemodel_writer` (writing)."""

# NetParameter fields holding layers, and the blob field of each layer generation.
NET_LAYER_V2 = 100
NET_LAYERS_V1 = 2
LAYER_BLOBS_V2 = 7
LAYER_BLOBS_V1 = 6
V1_V0_LAYER = 1
V0_NAME = 1
V0_BLOBS = 50

# BlobProto fields.
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA = 5
BLOB_SHAPE = 7
BLOB_DOUBLE_DATA = 8
BLOB_RAW_TYPE = 10
BLOB_RAW_DATA = 12
SHAPE_DIM = 1


def is_repeated(fdesc) -> bool:
    """Whether a protobuf FieldDescriptor is repeated (``is_repeated`` on protobuf >= 5.28,
    ``label == LABEL_REPEATED`` before)."""
    rep = getattr(fdesc, "is_repeated", None)
    if rep is not None:
        return bool(rep)
    return fdesc.label == fdesc.LABEL_REPEATED
