"""`fcnkit train --tensorboard DIR`: the CSV figures also go to TensorBoard scalars."""

from __future__ import annotations

import importlib.util

import pytest

from fcnkit.cli.main import main
from fcnkit.train import tblog
from tests.train._scenes import make_dataset, write_solver

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("tb_scenes"), scenes=4, size=64)


def _train(dataset, folder, *extra):
    solver = write_solver(folder)
    return main(["train", str(solver), "--images", str(dataset / "images"), "--labels",
                 str(dataset / "labels"), "--chip", "32", "--workers", "0", "--no-progress",
                 "--csv", str(folder / "log.csv"), *extra])


def _csv_rows(folder):
    rows = [r.split(",") for r in (folder / "log.csv").read_text().splitlines()[1:]]
    return [(int(i), ph, n, float(v)) for i, ph, n, v in rows]


class _Recorder:
    """Stands in for torch's SummaryWriter: records add_scalar calls."""

    def __init__(self):
        self.scalars, self.closed = [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_every_logged_figure_becomes_a_scalar(dataset, tmp_path, monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(tblog, "summary_writer", lambda folder: recorder)
    assert _train(dataset, tmp_path, "--tensorboard", str(tmp_path / "tb")) == 0
    expect = [(f"{ph}/{n}", v, i) for i, ph, n, v in _csv_rows(tmp_path)]
    got = [(tag, pytest.approx(v, rel=1e-8), step) for tag, v, step in recorder.scalars]
    assert got == expect and recorder.closed
    assert {"train/loss", "train/lr", "test0/loss"} <= {tag for tag, _, _ in expect}


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed: the missing-package "
                    "error cannot happen")
def test_missing_tensorboard_is_a_clear_error(dataset, tmp_path, capsys):
    assert _train(dataset, tmp_path, "--tensorboard", str(tmp_path / "tb")) != 0
    err = capsys.readouterr().err
    assert "needs the tensorboard package" in err and "Traceback" not in err


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="the tensorboard package is not installed "
                    "(optional: pip install tensorboard)")
def test_event_files_hold_the_csv_figures(dataset, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _train(dataset, tmp_path, "--tensorboard", str(tmp_path / "tb")) == 0
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    for i, ph, n, v in _csv_rows(tmp_path):
        assert any(e.step == i and e.value == pytest.approx(v, rel=1e-6)
                   for e in events.Scalars(f"{ph}/{n}"))
