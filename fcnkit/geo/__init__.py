"""fcnkit.geo: rasters for road models (rasterio windows, bands, stretch, tiled inference).

Sees a Predictor and rasters, nothing of Caffe (DESIGN.md, "The road side").
"""
