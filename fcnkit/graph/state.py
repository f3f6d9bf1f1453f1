"""NetState filtering, exactly as Caffe's Net::FilterNet / Net::StateMeetsRule
(src/caffe/net.cpp).

A layer has ``include`` rules or ``exclude`` rules, not both. Without include rules it is
kept unless an exclude rule matches; with include rules it is kept iff one matches. A rule
matches when its phase (if set) equals the state's, the state's level lies in
[min_level, max_level] (where set), the state has every ``stage`` of the rule and none of
its ``not_stage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from fcnkit.errors import NetDefinitionError, InputError

TRAIN, TEST = 0, 1
PHASES = {"TRAIN": TRAIN, "TEST": TEST}


@dataclass(frozen=True)
class NetState:
    """The state a net is instantiated in (Caffe's NetState). Default: TEST, level 0."""

    phase: int = TEST
    level: int = 0
    stages: tuple[str, ...] = field(default_factory=tuple)

    @staticmethod
    def make(phase: str | int = "TEST", level: int = 0, stages: Iterable[str] = ()) -> "NetState":
        """Build from CLI-style values (``phase`` "TRAIN"/"TEST", case-insensitive).

        Raises:
            InputError: unknown phase name.
        """
        if isinstance(phase, str):
            key = phase.upper()
            if key not in PHASES:
                raise InputError(f"unknown phase '{phase}'; use TRAIN or TEST")
            phase = PHASES[key]
        return NetState(int(phase), int(level), tuple(stages))

    @property
    def phase_name(self) -> str:
        return "TRAIN" if self.phase == TRAIN else "TEST"


def rule_matches(state: NetState, rule) -> bool:
    """Caffe's StateMeetsRule for one NetStateRule."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(s not in state.stages for s in rule.stage):
        return False
    if any(s in state.stages for s in rule.not_stage):
        return False
    return True


def layer_included(state: NetState, layer, where: str = "") -> bool:
    """Whether a LayerParameter is part of the net in ``state``.

    Raises:
        NetDefinitionError: the layer has both include and exclude rules (Caffe refuses
            such a net: "Specify either include rules or exclude rules; not both").
    """
    if len(layer.include) and len(layer.exclude):
        raise NetDefinitionError(f"{where}layer '{layer.name}' has both include and exclude rules; "
                                 "Caffe allows only one kind")
    if len(layer.include):
        return any(rule_matches(state, r) for r in layer.include)
    return not any(rule_matches(state, r) for r in layer.exclude)
