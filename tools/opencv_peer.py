#!/usr/bin/env python
"""OpenCV 4.x dnn as a benchmark peer, in its own interpreter (not a test).

OpenCV 5 no longer reads Caffe files (``cv2.dnn.readNetFromCaffe`` is gone), and fcnkit's
environment has OpenCV 5; so tools/bench_backends.py starts this script with another
Python that has OpenCV 4.x (``--opencv-python PATH``; made with
``python3 -m venv /tmp/cv410 && /tmp/cv410/bin/pip install opencv-python-headless==4.10.0.84 numpy``).
It needs only numpy and cv2 (no fcnkit, no torch).

Usage: ``opencv_peer.py NET.prototxt NET.caffemodel INPUT.npy OUTPUT_BLOB [THREADS]``, then a
line protocol on stdin/stdout: the script first prints ``ready OPENCV_VERSION``; for each
``out PATH`` line it runs the net once, saves the output to PATH (.npy) and prints ``ok``;
for each ``run`` line it runs ``net.forward`` once and prints the elapsed seconds (timed
here, so the pipe is not counted); ``quit`` ends it.
"""

from __future__ import annotations

import sys
import time


def main(argv) -> int:
    import cv2
    import numpy as np

    proto, weights, inp, blob = argv[:4]
    if len(argv) > 4 and int(argv[4]) > 0:
        cv2.setNumThreads(int(argv[4]))
    net = cv2.dnn.readNetFromCaffe(proto, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    x = np.load(inp)

    def forward():
        net.setInput(x)
        return net.forward(blob)

    print(f"ready {cv2.__version__}", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            t0 = time.perf_counter()
            forward()
            print(f"{time.perf_counter() - t0:.9f}", flush=True)
        elif cmd == "out":
            np.save(arg, forward())
            print("ok", flush=True)
        elif cmd == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
