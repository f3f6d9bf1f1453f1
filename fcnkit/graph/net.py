"""The checked graph of a net: layers and versioned blobs in a networkx DAG.

Built from a V2 NetParameter after NetState filtering (Caffe's Net::Init rules,
src/caffe/net.cpp):

- a bottom must have been produced by an earlier layer (or a net input);
- a top with the same name as the bottom at the same position is an in-place
  computation: it makes a new *version* of that blob; any other top name that already
  exists is an error ("produced by multiple sources");
- net outputs are the blob versions that no layer consumes.

Blob versions have ids: the first version of blob ``b`` is ``"b"``; the version written
in place by layer ``L`` is ``"b@L"``. Node ids in :attr:`Net.graph` are ``("layer",
name)`` and ``("blob", id)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from fcnkit import layers as registry
from fcnkit.caffe.forks import extra_param_names
from fcnkit.errors import NetDefinitionError, UnsupportedLayerError
from fcnkit.graph.state import NetState, layer_included


@dataclass
class LayerNode:
    """One layer of a net, with its registry object and its resolved blob versions."""

    name: str
    type: str
    index: int
    line: int | None
    param: Any
    layer: registry.Layer
    bottoms: list[str] = field(default_factory=list)   # blob version ids
    tops: list[str] = field(default_factory=list)      # blob version ids

    @property
    def role(self) -> str:
        return self.layer.role

    def where(self) -> str:
        return self.layer.where()


class OpaqueLayer(registry.Layer):
    """Stands for a layer of an unsupported type (Python, ...) in nets loaded with
    ``allow_unsupported=True``, for analyses that need no shapes (offsets): a layer
    without bottoms is treated as a data source, any other has no coordinate map."""

    bottoms = (0, None)
    tops = (0, None)

    def setup(self) -> None:
        self.type = self.param.type
        self.role = "input" if len(self.param.bottom) == 0 else "compute"

    def declared_shapes(self):
        return [None] * len(self.param.top)

    def output_shapes(self, bottom_shapes):
        raise self.error(f"layer type '{self.type}' is not supported, so its output shape is "
                         "unknown; register the type (see fcnkit.layers.register)")

    def coord_map(self):
        raise registry.NoCoordMap(f"unsupported layer type '{self.type}'")


class Net:
    """A filtered, checked net: ordered layers, blob versions and the DAG between them.

    Attributes:
        name: the net's name.
        path: the prototxt it came from, or None.
        state: the NetState it was filtered with.
        layers: layers in prototxt order (a topological order).
        graph: networkx DiGraph; nodes ("layer", name) and ("blob", id). Built on first
            use from ``layers`` (compiling and loading a net do not need it, and networkx
            alone takes ~0.2 s to import).
        blob_name: blob version id -> Caffe blob name.
        producer: blob version id -> producing LayerNode.
        consumers: blob version id -> consuming LayerNodes.
        inputs: ids of the blobs produced by input layers (Input, Data, ...).
        outputs: ids of blob versions no layer consumes (Caffe's net outputs).
        final: Caffe blob name -> id of its last version.
        source: the NetSource it was loaded from (for layer lines), or None.
        prepared: what ``deploy``/``classes``/``input_shapes`` changed
            (:class:`fcnkit.graph.prepare.Prepared`), or None; ``param`` is then the
            prepared copy.
    """

    def __init__(self, param, state: NetState | None = None, path: str | None = None,
                 layer_lines: list[int | None] | None = None, source: Any = None,
                 allow_unsupported: bool = False, *, deploy: bool = False,
                 classes: int | None = None, input_shapes: Mapping[str | None, Any] | None = None):
        self.prepared = None
        if deploy or classes is not None or input_shapes:
            from fcnkit.graph.prepare import prepare

            self.prepared = prepare(param, layer_lines or [], state or NetState(),
                                    f"{path}: " if path else "", deploy=deploy, classes=classes,
                                    input_shapes=input_shapes)
            param, layer_lines = self.prepared.param, self.prepared.lines
        self.param = param
        self.name = param.name
        self.path = path
        self.state = state or NetState()
        self.source = source
        self.layers: list[LayerNode] = []
        self._graph = None
        self.blob_name: dict[str, str] = {}
        self.producer: dict[str, LayerNode] = {}
        self.consumers: dict[str, list[LayerNode]] = {}
        self.final: dict[str, str] = {}
        self._by_name: dict[str, LayerNode] = {}
        self.allow_unsupported = allow_unsupported
        self.unsupported: list[str] = []
        lines = list(layer_lines or [])
        lines += [None] * (len(param.layer) - len(lines))
        self._build(lines)

    # ------------------------------------------------------------------ construction

    def _where(self) -> str:
        return f"{self.path}: " if self.path else ""

    def _build(self, lines: list[int | None]) -> None:
        kept = []
        for i, lp in enumerate(self.param.layer):
            if layer_included(self.state, lp, self._where()):
                kept.append((i, lp, lines[i]))

        unsupported = [(lp, line, _unsupported(lp)) for _, lp, line in kept]
        unsupported = [u for u in unsupported if u[2] is not False]
        self.unsupported = [lp.name for lp, _, _ in unsupported]
        if unsupported and not self.allow_unsupported:
            rows = "\n".join(f"  - layer '{lp.name}' of type '{lp.type}'"
                             + (f" (line {line})" if line else "") + (f": {why}" if why else "")
                             for lp, line, why in unsupported)
            known = ", ".join(registry.registered_types())
            raise UnsupportedLayerError(
                f"{self._where()}{len(unsupported)} layer(s) of unsupported type:\n{rows}\n"
                f"Supported types: {known}.\n"
                "Register a custom type with fcnkit.layers.register (see `fcnkit layers --help` "
                "and the README section 'Custom layer types').")

        seen_names: dict[str, int | None] = {}
        for index, lp, line in kept:
            loc = f", line {line}" if line else ""
            if not lp.name:
                raise NetDefinitionError(f"{self._where()}a layer of type '{lp.type}'{loc} has no name")
            if lp.name in seen_names:
                self._duplicate_name(lp, line, seen_names[lp.name], kept)
            seen_names[lp.name] = line
            cls = registry.lookup(lp.type)
            if cls is not None and cls.unsupported_reason(lp) is not None:
                cls = None  # allow_unsupported: analysed as an opaque layer
            layer = (cls or OpaqueLayer)(lp, line, self.path)
            _check_extra_params(layer, lp)
            lo, hi = layer.bottoms
            if len(lp.bottom) < lo or (hi is not None and len(lp.bottom) > hi):
                raise layer.error(f"takes {_count(lo, hi)} bottom(s), got {len(lp.bottom)}")
            lo, hi = layer.tops
            if len(lp.top) < lo or (hi is not None and len(lp.top) > hi):
                raise layer.error(f"takes {_count(lo, hi)} top(s), got {len(lp.top)}")
            node = LayerNode(lp.name, lp.type, len(self.layers), line, lp, layer)
            self._connect(node, kept)
            self.layers.append(node)
            self._by_name[node.name] = node

        self.inputs = [t for n in self.layers if n.role == "input" for t in n.tops]
        self.outputs = [b for n in self.layers for b in n.tops if not self.consumers.get(b)]

    def _duplicate_name(self, lp, line, first, kept) -> None:
        """Two layers of the filtered net share a name (duplicates in other phases or
        stages were filtered out before): an error naming both lines."""
        loc = f", line {line}" if line else ""
        same = [k for _, k, _ in kept if k.name == lp.name]
        hint = ""
        if all((registry.lookup(k.type) or registry.Layer).role in ("loss", "metric") for k in same):
            hint = "; they are loss/metric layers: --deploy removes them"
        raise NetDefinitionError(
            f"{self._where()}layer name '{lp.name}'{loc} is used twice in phase "
            f"{self.state.phase_name} (first{f' at line {first}' if first else ''}); fcnkit names "
            f"modules and weights after layers, so names must be unique in a phase{hint}")

    def _connect(self, node: LayerNode, kept) -> None:
        for bname in node.param.bottom:
            if bname not in self.final:
                self._missing_bottom(node, bname, kept)
            bid = self.final[bname]
            node.bottoms.append(bid)
            self.consumers.setdefault(bid, []).append(node)
        listed: set[str] = set()  # a set: Slice layers may have 10^4 tops (linear, not quadratic)
        for i, tname in enumerate(node.param.top):
            in_place = i < len(node.param.bottom) and node.param.bottom[i] == tname
            if tname in self.final and not in_place:
                prev = self.producer.get(self.final[tname])
                by = f" by layer '{prev.name}'" if prev else ""
                raise node.layer.error(
                    f"top '{tname}' is already produced{by}; a blob may be written twice only "
                    "in place (top equal to the bottom at the same position)")
            bid = f"{tname}@{node.name}" if in_place else tname
            if tname in listed:
                raise node.layer.error(f"top '{tname}' is listed twice")
            listed.add(tname)
            node.tops.append(bid)
            self.blob_name[bid] = tname
            self.producer[bid] = node
            self.final[tname] = bid

    def _missing_bottom(self, node: LayerNode, bname: str, kept) -> None:
        later = [lp for _, lp, _ in kept if bname in lp.top]
        if later:
            # Produced later: either a cycle or layers out of order. Look for a cycle among
            # blob-name dependencies to name it.
            import networkx as nx

            dep = nx.DiGraph()
            for _, lp, _ in kept:
                for b in lp.bottom:
                    for t in lp.top:
                        if t != b:
                            dep.add_edge(b, t, layer=lp.name)
            try:
                cyc = nx.find_cycle(dep, source=bname)
                layers_in = " -> ".join(dict.fromkeys(dep.edges[e]["layer"] for e in cyc))
                raise node.layer.error(f"the net has a cycle through layers {layers_in} "
                                      f"(blob '{bname}'); a Caffe net must be a DAG")
            except nx.NetworkXNoCycle:
                pass
            raise node.layer.error(
                f"bottom '{bname}' is used before layer '{later[0].name}' produces it; Caffe "
                "requires layers in order: move the layer below its producer")
        known = ", ".join(sorted(self.final)) or "none"
        raise node.layer.error(f"bottom '{bname}' is not produced by any earlier layer "
                              f"(in phase {self.state.phase_name}); known blobs: {known}. If it is "
                              "the net's input (a DIGITS template's deploy stage leaves the input "
                              f"to the tool), give --input-shape {bname}=N,C,H,W")

    # ------------------------------------------------------------------ queries

    @property
    def graph(self):
        """The networkx DiGraph of layers and blob versions: node ("layer", name) with
        attributes ``kind="layer"``, ``layer`` (its LayerNode); node ("blob", id) with
        ``kind="blob"``, ``name`` (the Caffe blob name); edges blob -> layer for bottoms,
        layer -> blob for tops. Built once, on first use, in prototxt order."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph()
            for node in self.layers:
                lnode = ("layer", node.name)
                g.add_node(lnode, kind="layer", layer=node)
                g.add_edges_from((("blob", bid), lnode) for bid in node.bottoms)
                for bid in node.tops:
                    g.add_node(("blob", bid), kind="blob", name=self.blob_name[bid])
                    g.add_edge(lnode, ("blob", bid))
            self._graph = g
        return self._graph

    def layer(self, name: str) -> LayerNode:
        """The layer named ``name``.

        Raises:
            NetDefinitionError: no such layer in this phase.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise NetDefinitionError(f"{self._where()}no layer named '{name}' in phase "
                                     f"{self.state.phase_name}") from None

    def has_layer(self, name: str) -> bool:
        return name in self._by_name

    def blob(self, name: str) -> str:
        """The id of the final version of the blob ``name`` (or ``name`` if it is an id).

        Raises:
            NetDefinitionError: no such blob.
        """
        if name in self.final:
            return self.final[name]
        if name in self.blob_name:
            return name
        raise NetDefinitionError(f"{self._where()}no blob named '{name}'; blobs: "
                                 f"{', '.join(sorted(self.final))}")

    def input_layers(self) -> list[LayerNode]:
        return [n for n in self.layers if n.role == "input"]

    def ancestors(self, blob_id: str) -> set[str]:
        """Blob version ids upstream of ``blob_id`` (not including it)."""
        import networkx as nx

        return {n[1] for n in nx.ancestors(self.graph, ("blob", blob_id)) if n[0] == "blob"}

    def __repr__(self) -> str:
        return (f"Net({self.name!r}, {len(self.layers)} layers, phase {self.state.phase_name}, "
                f"inputs {self.inputs}, outputs {self.outputs})")


def _unsupported(lp) -> str | None | bool:
    """False for a layer fcnkit can use; else the reason (None: its type is not registered)."""
    cls = registry.lookup(lp.type)
    if cls is None:
        return None
    reason = cls.unsupported_reason(lp)
    return False if reason is None else reason


def _count(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return str(lo) if lo == hi else f"{lo} to {hi}"


_TEXT_START = re.compile(r'\s*[A-Za-z_]\w*\s*:\s*["\'\d-]')


def is_prototxt_text(source: str) -> bool:
    """Whether the string ``source`` given to :func:`load_net` is prototxt text rather than a
    path: it names no existing file and has a line break, a ``{`` or starts with
    ``field: "value"`` / ``field: number`` (``C:\\nets\\x.prototxt`` stays a path)."""
    if "\n" not in source and "{" not in source and not _TEXT_START.match(source):
        return False
    try:
        return not Path(source).exists()
    except (OSError, ValueError):  # too long for a path, or a NUL: not a file name
        return True


def load_net(source: Any, state: NetState | None = None, *, phase: str | None = None,
             stages: Iterable[str] = (), level: int = 0, allow_unsupported: bool = False,
             deploy: bool = False, classes: int | None = None,
             input_shapes: Mapping[str | None, Any] | None = None) -> Net:
    """Load and check a net.

    Args:
        source: a prototxt path, prototxt text, a :class:`fcnkit.caffe.NetSource`, or a
            NetParameter. A ``str`` is text when it names no existing file and looks like
            prototxt (a line break, a ``{``, or ``field: "value"`` / ``field: 1``);
            otherwise it is a path. A :class:`pathlib.Path` is always a path. To be
            explicit, pass ``fcnkit.caffe.parse_prototxt(text)``.
        state: the NetState; or give ``phase``/``stages``/``level``. Default: TEST.
        allow_unsupported: stand unsupported layer types in by :class:`OpaqueLayer`
            instead of refusing the net (for shape-free analyses such as offsets).
        deploy: remove loss/metric layers and the input tops only they read (labels)
            before the net is built (:mod:`fcnkit.graph.prepare`).
        classes: num_output for a final classifier that has none (DIGITS templates).
        input_shapes: {blob name (None: the only one): (N, C, H, W)}; a bottom that no
            layer produces gets an Input layer of that shape (DIGITS deploy stage).

    Raises:
        CaffeFormatError: the file cannot be read.
        NetDefinitionError / UnsupportedLayerError: the net is not valid.
    """
    from fcnkit import caffe

    if state is None:
        state = NetState.make(phase or "TEST", level, stages)
    if isinstance(source, str) and is_prototxt_text(source):
        source = caffe.parse_prototxt(source)
    elif isinstance(source, (str, Path)):
        source = caffe.read_prototxt(source)
    if isinstance(source, caffe.NetSource):
        return Net(source.param, state, source.path, source.layer_lines, source,
                   allow_unsupported=allow_unsupported, deploy=deploy, classes=classes,
                   input_shapes=input_shapes)
    return Net(source, state, allow_unsupported=allow_unsupported, deploy=deploy,
               classes=classes, input_shapes=input_shapes)


def _check_extra_params(layer, lp) -> None:
    """Refuse an ``xxx_param`` block that no schema defines (kept by the prototxt reader for
    plugin layer types) on a layer whose type is built into fcnkit, which would ignore it."""
    names = extra_param_names(lp)
    if names and type(layer).__module__.startswith("fcnkit.") and not isinstance(layer, OpaqueLayer):
        raise layer.error(
            f"unknown field '{names[0]}': neither BVLC Caffe, the Caffe forks fcnkit knows "
            f"(schemas/caffe_forks.proto) nor the {layer.type} layer define it; remove it, or "
            "register a layer type that reads it (fcnkit.caffe.forks.extra_param)")
