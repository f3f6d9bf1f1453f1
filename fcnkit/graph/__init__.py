"""Phase/stage/level filtering and the checked DAG of layers and blobs."""

from fcnkit.graph.net import LayerNode, Net, load_net
from fcnkit.graph.state import TEST, TRAIN, NetState, layer_included, rule_matches

__all__ = ["Net", "LayerNode", "load_net", "NetState", "TRAIN", "TEST", "layer_included",
           "rule_matches"]
