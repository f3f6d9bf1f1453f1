"""Net surgery on Caffe nets: classifier -> fully convolutional network.

Each step takes a net (NetParameter, NetSource, Net or prototxt path) and optional
weights (``{layer: [arrays]}``, CaffeModel or caffemodel path) and returns a
:class:`SurgeryResult` (new net, new weights, report); nothing is modified in place.

- :func:`convolutionalize`: every InnerProduct -> the equivalent Convolution.
- :func:`transplant`: copy weights by layer name (copy / coerce / drop / initialise).
- :func:`add_fcn_head`: score_fr + bilinear upsampling + skips + computed crops (FCN-32s/16s/8s).
- :func:`adapt_input_bands`: a 3-band first convolution -> N bands (WorldView-3 presets).
- :func:`set_num_classes`: resize the score layers (keeping the first classes on request).
- :func:`fcn_surgery` / :func:`write_outdir`: the whole chain and its atomic output directory.

Fillers (Caffe's, including both bilinear conventions) are :mod:`fcnkit.fillers`.
"""

from fcnkit.surgery.bands import BAND_PRESETS, WV3_BANDS, adapt_input_bands, band_matrix, parse_band_map
from fcnkit.surgery.classes import find_score_layers, set_num_classes
from fcnkit.surgery.convolutionalize import convolutionalize
from fcnkit.surgery.heads import add_fcn_head, upsampling_kernels
from fcnkit.surgery.global_pool import localise_global_pooling
from fcnkit.surgery.pipeline import (HEADS, fcn_surgery, first_input_name, load_classifier,
                                     set_input_shape, torch_state, write_outdir)
from fcnkit.surgery.report import LayerEntry, SurgeryReport, SurgeryResult
from fcnkit.surgery.transplant import transplant

__all__ = ["convolutionalize", "transplant", "add_fcn_head", "adapt_input_bands", "set_num_classes",
           "fcn_surgery", "write_outdir", "load_classifier", "set_input_shape", "torch_state",
           "SurgeryResult", "SurgeryReport", "LayerEntry", "BAND_PRESETS", "WV3_BANDS",
           "parse_band_map", "band_matrix", "find_score_layers", "upsampling_kernels", "HEADS",
           "localise_global_pooling", "first_input_name"]
