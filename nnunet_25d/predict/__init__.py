"""``nnunet25d predict``: the command, and the engine it runs each model on (ONNX Runtime or PyTorch)."""
