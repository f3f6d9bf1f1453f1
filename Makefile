# Set-up and entry points. Both targets create the virtual environment on a fresh machine
# (CPU build of torch pinned: an unpinned torch would pull several GB of CUDA packages).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fcnkit-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

## Main job: compile the bundled FCN-8s deploy prototxt and print its layer/offset table.
demo: $(STAMP)
	$(VENV)/bin/fcnkit compile

## The test suite (CPU only; GPU/TensorRT tests skip with a reason), one pytest-xdist worker
## per core; a test file stays on one worker (its tests share cached ONNX exports).
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile

## Benchmarks (not tests): figures measured side by side in one run, printed.
bench: $(STAMP)
	$(PY) tools/bench_compile.py
	$(PY) tools/bench_backends.py

clean:
	rm -rf $(VENV) build *.egg-info
