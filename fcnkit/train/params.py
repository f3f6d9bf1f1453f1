"""Caffe's learnable parameters of a compiled net, with their ParamSpec (lr_mult,
decay_mult, shared name), in Caffe's order.

Follows Net::AppendParam (src/caffe/net.cpp): every blob of every layer, in layer order
then blob order, is a net param; ``param { name: "x" }`` on two layers makes the later
one share the first one's blob (its "owner"): only owners are learnable params (the
solver's ``history`` has one entry per owner), the sharer's gradient adds into the
owner's. ``lr_mult``/``decay_mult`` default to 1; on a sharer, a value that is set must
equal the owner's (or sets it if the owner left it unset). ``lr_mult 0`` means Caffe
computes no gradient for the blob (param_propagate_down false), so it never moves.

In torch, a shared blob is one ``torch.nn.Parameter`` object set on both submodules
(:func:`tie_shared`), so autograd sums the two gradients exactly as Caffe's shared diff.
BatchNorm statistics are torch buffers: listed (Caffe has them in its history, with
zeros), never trained.

The layer -> submodule mapping goes through the compiler's own accessor
(``fcnkit.compile.naming.module_name``), never a re-derived name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fcnkit.errors import NetDefinitionError


@dataclass
class LearnableParam:
    """One Caffe learnable blob (a ParamSpec owner).

    Attributes:
        layer: Caffe layer name of the owner.
        index: blob index in that layer (Caffe ``blobs[index]``).
        torch_name: attribute name on the layer's submodule (``weight``, ``bias``...).
        tensor: the torch Parameter (or buffer for statistics), torch layout.
        lr_mult, decay_mult: Caffe ParamSpec multipliers.
        share_name: the ParamSpec ``name`` ('' when unnamed).
        trainable: a torch Parameter with lr_mult != 0 (it gets a gradient).
        sharers: (layer, torch_name) of the layers that share this blob.
    """

    layer: str
    index: int
    torch_name: str
    tensor: torch.Tensor
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    share_name: str = ""
    trainable: bool = True
    sharers: tuple = ()
    lr_set: bool = False
    decay_set: bool = False


def layer_module(compiled, layer_name: str) -> torch.nn.Module:
    """The submodule of a Caffe layer in a compiled net (the compiler's naming).

    Raises:
        NetDefinitionError: the layer was not compiled into a submodule.
    """
    from fcnkit.compile.naming import module_name

    try:
        return compiled.module.get_submodule(module_name(layer_name))
    except AttributeError:
        raise NetDefinitionError(f"layer '{layer_name}' has no compiled module") from None


def _tensor(module: torch.nn.Module, name: str) -> torch.Tensor:
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    return own[name]


def learnable_params(compiled) -> list[LearnableParam]:
    """The learnable params of a compiled net, in Caffe's order, with shared blobs tied.

    Args:
        compiled: a :class:`fcnkit.compile.CompiledNet` (TRAIN phase for training).

    Returns:
        One :class:`LearnableParam` per owner blob; sharers are tied to their owner
        (their submodule attribute becomes the owner's Parameter object).

    Raises:
        NetDefinitionError: more ParamSpecs than blobs, a shared name whose blobs differ
            in shape, or mismatched lr_mult/decay_mult on a shared name (Caffe's CHECKs).
    """
    owners: dict[str, LearnableParam] = {}
    out: list[LearnableParam] = []
    for node in compiled.net.layers:
        names = node.layer.param_names()
        if not names or node.role == "input":
            continue
        specs = list(node.param.param)
        if len(specs) > len(names):
            raise NetDefinitionError(
                f"{node.where()}: {len(specs)} `param` specs for {len(names)} blob(s) "
                f"({', '.join(names)}); give at most one per blob")
        module = layer_module(compiled, node.name)
        learnable = node.layer.learnable()
        for i, torch_name in enumerate(names):
            spec = specs[i] if i < len(specs) else None
            lr = float(spec.lr_mult) if spec is not None and spec.HasField("lr_mult") else None
            decay = (float(spec.decay_mult) if spec is not None and spec.HasField("decay_mult")
                     else None)
            share = spec.name if spec is not None else ""
            tensor = _tensor(module, torch_name)
            if share and share in owners:
                _share(owners[share], node, module, torch_name, tensor, lr, decay)
                continue
            if not learnable[i] and lr is None:
                lr = 0.0  # statistics (BatchNorm): Caffe masks them with lr_mult 0
            p = LearnableParam(node.name, i, torch_name, tensor,
                               1.0 if lr is None else lr, 1.0 if decay is None else decay,
                               share, False, (), lr is not None, decay is not None)
            if share:
                owners[share] = p
            out.append(p)
    for p in out:
        p.trainable = isinstance(p.tensor, torch.nn.Parameter) and p.lr_mult != 0
        if isinstance(p.tensor, torch.nn.Parameter):
            p.tensor.requires_grad_(p.trainable)
    return out


def _share(owner: LearnableParam, node, module, torch_name, tensor, lr, decay) -> None:
    """Tie a sharer's blob to its owner (Net::AppendParam's checks)."""
    where = node.where()
    if tuple(tensor.shape) != tuple(owner.tensor.shape):
        raise NetDefinitionError(
            f"{where}: shared param '{owner.share_name}' has shape {tuple(tensor.shape)} here "
            f"but {tuple(owner.tensor.shape)} in layer '{owner.layer}'; shared blobs must match")
    for attr, value, flag in (("lr_mult", lr, "lr_set"), ("decay_mult", decay, "decay_set")):
        if value is None:
            continue
        if getattr(owner, flag):
            if value != getattr(owner, attr):
                raise NetDefinitionError(
                    f"{where}: shared param '{owner.share_name}' has {attr} {value} here but "
                    f"{getattr(owner, attr)} in layer '{owner.layer}'; make them equal")
        else:
            setattr(owner, attr, value)
            setattr(owner, flag, True)
    if isinstance(owner.tensor, torch.nn.Parameter):
        setattr(module, torch_name, owner.tensor)
    owner.sharers = owner.sharers + ((node.name, torch_name),)
