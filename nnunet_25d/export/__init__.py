"""``nnunet25d export``: a trained slab model's folds as ONNX files plus the description the runtime
(:mod:`nnunet_25d.deploy`) needs."""
