"""fcnkit.train: solver.prototxt -> Caffe's solvers and LR policies in PyTorch, road datasets,
the training loop, snapshots as caffemodel + solverstate, DDP under torchrun."""
