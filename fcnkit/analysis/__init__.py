"""Analysis of a net without running it: shapes, coordinate maps (scale factors, offsets,
crop offsets), parameter and FLOP counts, reports. Knows nothing of torch."""

from fcnkit.analysis.coord_maps import (BlobMap, CoordAnalysis, CropAlignment, align_crop,
                                        analyse_coord_maps, crop_offset, format_fraction, maps_to_ancestors)
from fcnkit.analysis.offsets import (CropRow, OffsetRow, crop_table, fix_crop_offsets,
                                     fix_crop_offsets_text, offset_table)
from fcnkit.analysis.report import FORMATS, offsets_json, render_offsets, table
from fcnkit.analysis.shapes import infer_shapes, input_shapes, parse_input_shapes, parse_shape
from fcnkit.analysis.summary import LayerCost, NetAnalysis, analyse, receptive_fields

__all__ = ["analyse", "NetAnalysis", "LayerCost", "infer_shapes", "input_shapes", "parse_shape",
           "parse_input_shapes", "analyse_coord_maps", "CoordAnalysis", "BlobMap", "crop_offset",
           "align_crop", "CropAlignment",
           "maps_to_ancestors", "offset_table", "crop_table", "fix_crop_offsets", "fix_crop_offsets_text", "OffsetRow",
           "CropRow", "render_offsets", "offsets_json", "table", "FORMATS", "format_fraction",
           "receptive_fields"]
