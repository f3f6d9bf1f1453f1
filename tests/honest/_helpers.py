"""Shared by the issue-13 honesty tests: the CLI driven in-process, the real LeNet files."""

from __future__ import annotations

from fcnkit.cli.main import main
from tests.conftest import DATA

LENET = DATA / "lenet_ahmdtaha"
LENET_NET = LENET / "mnist_deploy.prototxt"
LENET_WEIGHTS = LENET / "lenet_iter_10000.caffemodel"
CIFAR_NET = DATA / "bvlc_caffe" / "v2" / "examples" / "cifar10" / "cifar10_quick.prototxt"
CIFAR_WEIGHTS = DATA / "cifar10quick_ikkichung" / "cifar10_quick_iter_5000.caffemodel"


def run_cli(capsys, args):
    """(exit status, stdout, stderr) of ``fcnkit ARGS``; no traceback allowed."""
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, " ".join(cap.err.split())


def renamed_lenet(tmp_path, keep_filler: bool = True):
    """LeNet with its classifier ip2 renamed ip2_mnist (the fine-tuning pattern), with
    its xavier weight filler or without any (all zeros)."""
    text = LENET_NET.read_text().replace('"ip2"', '"ip2_mnist"')
    if not keep_filler:
        start = text.index('name: "ip2_mnist"')
        block = text.index("weight_filler", start)
        end = text.index("}", block)
        text = text[:block] + text[end + 1:]
    path = tmp_path / "lenet_renamed.prototxt"
    path.write_text(text)
    return path
