"""What a surgery did to every layer: the report written as Markdown and JSON.

Statuses of a destination layer's weights (the words of fcn.berkeleyvision.org's
``surgery.transplant``, which prints "copying", "coercing" and "dropping"):

- ``transplanted``: copied unchanged from the source weights;
- ``coerced``: the same values in a new shape (InnerProduct (N, C*H*W) -> Convolution
  (N, C, H, W));
- ``adapted``: computed from source weights (band adaptation, a subset of classes kept);
- ``initialised``: filled by a filler (the filler type is recorded);
- ``dropped``: a source layer (or blob) with no place in the destination;
- ``structure``: a layer without weights that the surgery added or changed;
- ``kept``: a layer without weights carried over unchanged.

Each step of a surgery appends a line to ``steps``; per-layer entries keep the history of
every step that touched the layer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("transplanted", "coerced", "adapted", "initialised", "dropped", "structure", "kept")


@dataclass
class LayerEntry:
    """One layer's fate.

    Attributes:
        layer: the destination layer name (the source name for dropped layers).
        status: one of :data:`STATUSES`.
        source: the source layer its weights came from, or None.
        shapes: Caffe shapes of the blobs after the surgery (empty for dropped layers).
        fillers: per blob, the filler that initialised it (None where not filled).
        notes: human-readable history, one line per step that touched the layer.
    """

    layer: str
    status: str
    source: str | None = None
    shapes: list[list[int]] = field(default_factory=list)
    fillers: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SurgeryReport:
    """The report of one surgery (one step or a chain of steps).

    Attributes:
        steps: one line per step, in order.
        layers: destination layer name -> entry, in net order.
        dropped: entries of source layers (or blobs) that were dropped.
        crop_offsets: Crop layer -> computed (offset_y, offset_x) in pixels.
        upsampling: Deconvolution layer -> {"stride", "kernel", "group", "convention"}.
        bands: band adaptation details (layer, mapping, scale, rule), or None.
        notes: warnings and remarks that concern no single layer.
    """

    steps: list[str] = field(default_factory=list)
    layers: dict[str, LayerEntry] = field(default_factory=dict)
    dropped: list[LayerEntry] = field(default_factory=list)
    crop_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    upsampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    bands: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    # ---- building ---------------------------------------------------------------

    def record(self, layer: str, status: str, note: str = "", *, source: str | None = None,
               shapes=None, fillers=None) -> LayerEntry:
        """Set a layer's status (a later step overrides an earlier one; notes accumulate)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        entry = self.layers.get(layer)
        if entry is None:
            entry = self.layers[layer] = LayerEntry(layer, status, source)
        else:
            entry.status = status
            if source is not None:
                entry.source = source
        if shapes is not None:
            entry.shapes = [list(map(int, s)) for s in shapes]
        if fillers is not None:
            entry.fillers = list(fillers)
        if note:
            entry.notes.append(note)
        return entry

    def drop(self, layer: str, note: str) -> None:
        """Record a dropped source layer (or blob)."""
        self.layers.pop(layer, None)
        self.dropped.append(LayerEntry(layer, "dropped", layer, notes=[note]))

    def record_kept_classes(self, layer: str, source: str, kept: int, old_classes: int,
                            classes: int) -> LayerEntry:
        """Record a score layer whose first ``kept`` classes hold the weights of the first
        ``kept`` of ``source``'s ``old_classes`` classes (fcn's ``expand_score``).

        The layer's entry from the transplant that initialised it is replaced: its weights
        come from ``source``, and only classes ``kept..classes-1`` (if any) keep the fillers
        recorded there, so the fillers column names those classes or is empty.
        """
        prev = self.layers.pop(layer, None)
        fillers = list(prev.fillers) if prev is not None else []
        note = f"first {kept} of {old_classes} classes from '{source}'"
        if classes > kept:
            fillers = [f and f"{f} (classes {kept}..{classes - 1})" for f in fillers]
            note += (f"; classes {kept}..{classes - 1} initialised by "
                     + ", ".join(f or "-" for f in (prev.fillers if prev else [])))
        else:
            fillers = [None] * len(fillers)
        return self.record(layer, "adapted", note, source=source,
                           shapes=prev.shapes if prev is not None else None, fillers=fillers)

    def merge(self, later: "SurgeryReport", renamed: dict[str, str] | None = None) -> "SurgeryReport":
        """This report followed by ``later`` (a step applied to this step's result).

        A layer that ``later`` only transplanted (copied unchanged) keeps its earlier
        status and notes; any other status of ``later`` wins, notes accumulate. ``renamed``
        maps earlier layer names to later ones.
        """
        out = SurgeryReport(self.steps + later.steps, notes=self.notes + later.notes,
                            dropped=self.dropped + later.dropped,
                            crop_offsets={**self.crop_offsets, **later.crop_offsets},
                            upsampling={**self.upsampling, **later.upsampling},
                            bands=later.bands or self.bands)
        renamed = renamed or {}
        earlier = {renamed.get(k, k): v for k, v in self.layers.items()}
        for name, e in later.layers.items():
            prev = earlier.get(e.source or name) or earlier.get(name)
            if prev is not None and e.status in ("transplanted", "kept"):
                merged = LayerEntry(name, prev.status, prev.source, e.shapes or prev.shapes,
                                    prev.fillers, prev.notes + e.notes)
            elif prev is not None:
                merged = LayerEntry(name, e.status, e.source if e.status != "initialised" else None,
                                    e.shapes, e.fillers, prev.notes + e.notes)
                if e.status in ("coerced", "adapted") and prev.source:
                    merged.source = prev.source
            else:
                merged = LayerEntry(name, e.status, e.source, e.shapes, e.fillers, list(e.notes))
            out.layers[name] = merged
        # Layers the later step never mentions (no weights, untouched) keep their entries.
        for name, e in earlier.items():
            if name not in out.layers and not any(d.layer == name for d in later.dropped):
                out.layers[name] = e
        return out

    # ---- queries ----------------------------------------------------------------

    def reorder(self, param) -> None:
        """Order the layer entries as the layers of ``param`` (a NetParameter); entries of
        layers ``param`` no longer has move to ``dropped`` (unless another layer's weights
        came from them, e.g. a classifier whose classes went to ``score_fr``)."""
        order = {lp.name: i for i, lp in enumerate(param.layer)}
        for name in [n for n in self.layers if n not in order]:
            e = self.layers.pop(name)
            # Weights that went on under another name (fc8 -> fc8-conv -> score_fr, whose
            # source is the classifier's 'fc8') are not dropped either.
            used = any(x.source is not None and x.source in (name, e.source)
                       for x in self.layers.values())
            if not used and not any(d.layer == name for d in self.dropped):
                self.dropped.append(LayerEntry(name, "dropped", name,
                                               notes=e.notes + ["not in the resulting net"]))
        self.layers = dict(sorted(self.layers.items(), key=lambda kv: order[kv[0]]))

    def by_status(self, status: str) -> list[str]:
        if status == "dropped":
            return [d.layer for d in self.dropped]
        return [n for n, e in self.layers.items() if e.status == status]

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_status(s)) for s in STATUSES}

    # ---- rendering --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "counts": self.counts(),
            "layers": [asdict(e) for e in self.layers.values()],
            "dropped": [asdict(e) for e in self.dropped],
            "crop_offsets": {k: list(v) for k, v in self.crop_offsets.items()},
            "upsampling": self.upsampling,
            "bands": self.bands,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self, title: str = "fcnkit surgery report") -> str:
        lines = [f"# {title}", ""]
        if self.steps:
            lines += ["## Steps", ""] + [f"{i}. {s}" for i, s in enumerate(self.steps, 1)] + [""]
        c = self.counts()
        lines += ["## Summary", "", ", ".join(f"{v} {k}" for k, v in c.items() if v) or "nothing", ""]
        lines += ["## Layers", "", "| layer | status | source | blob shapes | fillers | notes |",
                  "|---|---|---|---|---|---|"]
        for e in self.layers.values():
            lines.append(_row(e))
        if self.dropped:
            lines += ["", "## Dropped", "", "| layer | notes |", "|---|---|"]
            lines += [f"| {_cell(d.layer)} | {_cell('; '.join(d.notes))} |" for d in self.dropped]
        if self.crop_offsets:
            lines += ["", "## Crop offsets (computed)", "", "| crop layer | offset y | offset x |",
                      "|---|---|---|"]
            lines += [f"| {k} | {v[0]} | {v[1]} |" for k, v in self.crop_offsets.items()]
        if self.upsampling:
            lines += ["", "## Upsampling", "", "| layer | stride | kernel | group | weights |",
                      "|---|---|---|---|---|"]
            lines += [f"| {k} | {v['stride']} | {v['kernel']} | {v['group']} | {v['convention']} |"
                      for k, v in self.upsampling.items()]
        if self.bands:
            b = self.bands
            lines += ["", "## Input bands", "",
                      f"- layer: `{b['layer']}`, {b['source_channels']} -> {b['bands']} bands "
                      f"(source channel order {b['source_order']})",
                      "- mapping (1-based band <- source): " + ", ".join(
                          f"{k} <- {v}" for k, v in b["mapping"].items()),
                      f"- other bands: {b['fill']}"]
            if b.get("adapted", True):
                lines.append(f"- scale: {b['scale']:.6g} ({b['rule']})")
            else:
                lines.append(f"- weights: no pretrained weights to adapt; `{b['layer']}` is "
                             f"initialised by its filler for {b['bands']} bands (no scale applied)")
            if b.get("method"):
                lines.append(f"- rule: {b['method']}")
            if b.get("adapted", True) and not b.get("exact", True):
                lines.append("- note: the response to a constant input is preserved exactly only "
                             "for filters whose channels are equal (unequal source use)")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(e: LayerEntry) -> str:
    shapes = ", ".join("x".join(map(str, s)) if s else "scalar" for s in e.shapes) or "-"
    fillers = ", ".join(f or "-" for f in e.fillers) if any(e.fillers) else "-"
    return (f"| {_cell(e.layer)} | {e.status} | {_cell(e.source or '-')} | {shapes} | "
            f"{_cell(fillers)} | {_cell('; '.join(e.notes))} |")


@dataclass
class SurgeryResult:
    """The result of a surgery step: a new net, its weights and the report.

    Attributes:
        param: the new net (V2 NetParameter; the caller's input is never modified).
        blobs: ``{layer: [float32 arrays in Caffe shapes]}`` for every layer with weights,
            or None when the step ran on the structure only (no weights given).
        report: what happened to every layer.
        renamed: source layer name -> new name, for layers the step renamed.
        input_shapes: input shape overrides ({blob: (N, C, H, W)}) the net needs because its
            input layers (Data, ...) do not declare their shapes; None when they do.
        weights_report: :func:`fcn_surgery` only: the classifier's weights load report
            (:class:`fcnkit.compile.load_report.WeightsLoadReport`), None without weights.
    """

    param: Any
    blobs: dict[str, list] | None
    report: SurgeryReport
    renamed: dict[str, str] = field(default_factory=dict)
    input_shapes: dict[str | None, tuple[int, ...]] | None = None
    weights_report: Any = None
