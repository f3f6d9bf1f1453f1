"""Reports that fit: the compile and offsets tables on an 80-column terminal, the HTML page,
CSV numbers."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

from fcnkit.analysis import analyse
from fcnkit.cli.main import main
from fcnkit.cli.tables import fit_columns
from fcnkit.graph import load_net
from tests.caffe_tools._cli import run_on_terminal
from tests.conftest import DATA

FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt"
LENET = DATA / "lenet_ahmdtaha" / "mnist_deploy.prototxt"


def _table_rows(out: str) -> list[list[str]]:
    """The cells of the body rows of a rich table (│ a │ b │ lines)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()
            if line.startswith("│")]


def _table_width(out: str) -> int:
    return max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└")


def test_compile_table_on_80_columns_keeps_every_offset_whole(monkeypatch):
    """FCN-8s, as `compile` prints it (its keep/drop columns), on an 80-column terminal.
    (The analysis alone: compiling FCN-8s would fill 134 M parameters for nothing.)"""
    import io

    from rich.console import Console

    from fcnkit.cli.tables import COMPILE_DROP, COMPILE_KEEP, print_fitted

    buf = io.StringIO()
    term = Console(file=buf, width=80, force_terminal=True, color_system=None)
    header, cells = analyse(load_net(FCN8S)).layer_cells()
    print_fitted(term, "fcn8s", header, cells, COMPILE_KEEP, COMPILE_DROP)
    out = buf.getvalue()
    assert _table_width(out) <= 80
    rows = _table_rows(out)
    assert len(rows) == len(cells)  # one line per layer: nothing wrapped
    col = {h: header.index(h) for h in header}
    for got, want in zip(rows, cells):
        # layer, type, top shape, offset, cum. offset: shown in full, in this order
        assert got == [want[col[h]] for h in ("layer", "type", "top shape", "offset", "cum. offset")]
    assert "left out to fit 80 columns: params, MFLOP, factor, cum. factor" in " ".join(out.split())


def test_compile_command_fits_80_columns(monkeypatch):
    code, out = run_on_terminal(monkeypatch, ["compile", str(LENET)], width=80)
    header, cells = analyse(load_net(LENET)).layer_cells()
    assert code == 0 and _table_width(out) <= 80
    assert [r[0] for r in _table_rows(out)] == [c[0] for c in cells]
    code, out = run_on_terminal(monkeypatch, ["compile", str(LENET)], width=200)
    assert code == 0 and _table_rows(out) == cells and "left out" not in out


def test_fit_columns_drops_in_order_until_it_fits():
    header = ["a", "b", "c"]
    rows = [["x" * 10, "y" * 10, "z" * 10]]
    assert fit_columns(header, rows, 100, keep=["a"], drop=["c", "b"]) == [0, 1, 2]
    assert fit_columns(header, rows, 27, keep=["a"], drop=["c", "b"]) == [0, 1]  # 2*13+1
    assert fit_columns(header, rows, 10, keep=["a"], drop=["c", "b", "a"]) == [0]  # kept stays


def test_offsets_is_a_rich_table_on_a_terminal_markdown_in_a_pipe(monkeypatch, tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text(FCN8S.read_text().replace("offset: 31", "offset: 30"))
    code, out = run_on_terminal(monkeypatch, ["offsets", str(bad)], width=80)
    assert code == 0 and "┏" in out and "|---" not in out
    assert _table_width(out) <= 80
    rows = {r[0]: r for r in _table_rows(out)}
    assert rows["score"][1:] == ["2", "30,30", "31,31", "MISMATCH"]
    assert rows["upscore8"][1:] == ["Deconvolution", "7.5", "31"]  # offset, cumulative offset
    monkeypatch.undo()
    assert main(["offsets", str(bad)]) == 0  # captured by pytest: not a terminal
    assert "| layer | type | kernel |" in capsys.readouterr().out


class _Checker(HTMLParser):
    """Collects the tag structure; fails on a close tag that does not match its open tag."""

    VOID = {"meta", "br", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.seen, self.mismatch_rows = [], [], []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr" and ("class", "mismatch") in attrs:
            self.mismatch_rows.append(self.getpos())

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag


def test_html_report_is_a_complete_page_with_mismatches_marked(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text(FCN8S.read_text().replace("offset: 31", "offset: 30"))
    page = tmp_path / "report.html"
    assert main(["offsets", str(bad), "--format", "html", "-o", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>\n<html")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []  # every element closed
    assert {"html", "head", "meta", "title", "style", "body", "table", "caption"} <= set(checker.seen)
    assert len(checker.mismatch_rows) == 1 and "tr.mismatch" in text
    assert "<td>score</td><td>2</td><td>30,30</td><td>31,31</td><td>MISMATCH</td>" in text
    layers = tmp_path / "layers.html"
    assert main(["offsets", str(FCN8S), "--format", "html", "-o", str(layers)]) == 0
    assert "mismatch\"" not in layers.read_text().split("</style>")[1]


def test_compile_html_is_a_page_and_csv_numbers_are_plain(capsys):
    assert main(["compile", str(LENET), "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
    assert main(["compile", str(LENET), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    table = list(csv.reader(io.StringIO(out[:out.index("\n\n")] if "\n\n" in out else out)))
    header, rows = table[0], [r for r in table[1:] if len(r) == len(table[0])]
    analysis = analyse(load_net(LENET))
    by_name = {r[0]: r for r in rows}
    for name, cost in analysis.costs.items():
        assert int(by_name[name][header.index("params")]) == cost.params
        assert float(by_name[name][header.index("MFLOP")]) == round(cost.flops / 1e6, 1)
    assert by_name["ip1"][header.index("params")] == "400500"  # 500*800 + 500
