"""Compile a checked net into a torch.fx GraphModule; save and load compiled models."""

from fcnkit.compile.builder import CompiledNet, compile_net, module_name, to_numpy
from fcnkit.compile.store import is_compiled_dir, load, save_compiled
from fcnkit.compile.weights import WeightReport, export_blobs

__all__ = ["compile_net", "CompiledNet", "WeightReport", "export_blobs", "save_compiled", "load",
           "is_compiled_dir", "module_name", "to_numpy"]
