"""Net.graph, the networkx DAG of layers and blob versions: built on first use (loading and
compiling a net do not import networkx), with the nodes, attributes and edges that the
module docstring of fcnkit.graph.net defines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fcnkit import caffe
from fcnkit.graph import load_net

ROOT = Path(__file__).resolve().parents[2]

# data -> conv (in-place relu on conv) -> split into two consumers, one of them eltwise with data
NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "sum" type: "Eltwise" bottom: "conv" bottom: "data" top: "sum" }
"""


def test_graph_nodes_edges_and_attributes():
    net = load_net(caffe.parse_prototxt(NET))
    g = net.graph
    assert g is net.graph  # built once
    assert set(g.edges) == {
        (("layer", "data"), ("blob", "data")),
        (("blob", "data"), ("layer", "conv")), (("layer", "conv"), ("blob", "conv")),
        (("blob", "conv"), ("layer", "relu")), (("layer", "relu"), ("blob", "conv@relu")),
        (("blob", "conv@relu"), ("layer", "sum")), (("blob", "data"), ("layer", "sum")),
        (("layer", "sum"), ("blob", "sum")),
    }
    assert list(g.nodes) == [("layer", "data"), ("blob", "data"), ("layer", "conv"), ("blob", "conv"),
                             ("layer", "relu"), ("blob", "conv@relu"), ("layer", "sum"), ("blob", "sum")]
    assert g.nodes[("blob", "conv@relu")] == {"kind": "blob", "name": "conv"}
    assert g.nodes[("layer", "relu")]["kind"] == "layer"
    assert g.nodes[("layer", "relu")]["layer"] is net.layer("relu")
    assert net.ancestors("sum") == {"data", "conv", "conv@relu"}
    assert net.ancestors("conv") == {"data"}


PROBE = """
import json, sys
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
net = load_net(sys.argv[1])
compile_net(net, None)
before = "networkx" in sys.modules
upstream = sorted(net.ancestors("sum"))
print(json.dumps({"before": before, "after": "networkx" in sys.modules, "upstream": upstream}))
"""


def test_load_and_compile_do_not_import_networkx(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", PROBE, str(proto)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got == {"before": False, "after": True, "upstream": ["conv", "conv@relu", "data"]}
