"""Runtime for exported slab models (``nnunet25d export``): nnU-Net's inference without torch or nnunetv2.

Everything here needs only numpy, SciPy, scikit-image (nnU-Net's resampling), SimpleITK (nnU-Net's default image
reader) and ONNX Runtime: the ``[deploy]`` extra. Nothing in this package imports torch, nnunetv2 or a module of
the plugin that does.
"""
