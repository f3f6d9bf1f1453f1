"""fcnkit.roads: labels from road lines, mask -> road graph, SpaceNet metrics (IoU, APLS),
percolation connectivity, routes, navigation policies and CRF post-processing.

Sees rasters, vectors and graphs (rasterio, shapely, pyproj, networkx, scikit-image, OpenCV),
nothing of torch or Caffe (DESIGN.md, "The road side").
"""
