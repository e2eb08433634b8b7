"""OnnxSlabPredictor: ``nnunet25d predict`` for an exported model folder, on ONNX Runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nnunet_25d.deploy.model_description import ModelDescriptionError, read_model_description
from nnunet_25d.deploy.postprocessing import final_segmentation, write_probabilities, write_segmentation
from nnunet_25d.deploy.preprocessing import CaseGeometry, preprocess, read_case
from nnunet_25d.deploy.sliding_window import SlabSlidingWindow
from nnunet_25d.geometry.views import from_view, to_view

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


class OnnxSession:
    """One fold's exported network as a callable (N, C, S, h, w) float32 -> (N, K, h, w) float32."""

    def __init__(self, path: Path, providers: Sequence[str]):
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=list(providers))
        except Exception as error:  # onnxruntime's own kinds: InvalidProtobuf, InvalidGraph, NoSuchFile, Fail
            if type(error).__module__.startswith("onnxruntime"):
                raise ModelDescriptionError(f"ONNX Runtime cannot load {path} ({type(error).__name__}): the file is "
                                            f"damaged or not an exported network; export the model again "
                                            f"(nnunet25d export)") from None
            raise
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, slabs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: slabs})[0]


class OnnxSlabPredictor:
    """Every fold of an exported model, its preprocessing, slab sliding window and export of the results.

    ``slices_per_forward``: slices per network call (default 1, as the PyTorch predictor on CPU);
    ``use_mirroring``: test-time mirroring over the trained axes (as ``nnunet25d predict`` without
    ``--disable_tta``).
    """

    def __init__(self, model_dir: Path, providers: Sequence[str] = DEFAULT_PROVIDERS, use_mirroring: bool = True,
                 step_size: float | None = None, slices_per_forward: int = 1,
                 progress: Callable[[int], None] | None = None):
        model = read_model_description(Path(model_dir))
        self._set_up(model, [Path(model_dir) / fold["file"] for fold in model["folds"]], providers, use_mirroring,
                     step_size, slices_per_forward, progress)

    @classmethod
    def from_graphs(cls, model: dict[str, Any], graphs: Sequence[Path], providers: Sequence[str] = DEFAULT_PROVIDERS,
                    use_mirroring: bool = True, step_size: float | None = None, slices_per_forward: int = 1,
                    progress: Callable[[int], None] | None = None) -> "OnnxSlabPredictor":
        """A predictor from a description and one graph per fold held elsewhere (the graphs cached beside a trained
        model's checkpoints)."""
        predictor = cls.__new__(cls)
        predictor._set_up(model, list(graphs), providers, use_mirroring, step_size, slices_per_forward, progress)
        return predictor

    def _set_up(self, model: dict[str, Any], graphs: list[Path], providers: Sequence[str], use_mirroring: bool,
                step_size: float | None, slices_per_forward: int, progress: Callable[[int], None] | None) -> None:
        self.model = model
        self.networks = [OnnxSession(path, providers) for path in graphs]
        axis = self.model["slab_axis"]
        mirror_axes = [to_view(axis).index(a) for a in self.model["mirror_axes"]] if use_mirroring else []
        self.windows = [SlabSlidingWindow(network, self.model["num_heads"], self.model["slab_size"],
                                          self.model["tile"], step_size or self.model["step_size"],
                                          self.model["gaussian_sigma_scale"], mirror_axes, slices_per_forward,
                                          progress) for network in self.networks]

    def tiles_per_case(self, preprocessed_shape: Sequence[int]) -> int:
        """Network tiles one case needs over every fold (for a progress bar)."""
        view = [preprocessed_shape[a] for a in to_view(self.model["slab_axis"])]
        window = self.windows[0]
        depth_chunks = -(-view[0] // window.slices_per_forward)
        plane = [max(n, t) for n, t in zip(view[1:], window.tile)]
        return depth_chunks * len(window.tiles(plane)) * len(self.windows)

    def logits(self, data: np.ndarray) -> np.ndarray:
        """(K, ...) float16 logits of preprocessed (C, ...) ``data``, the folds' mean."""
        axis = self.model["slab_axis"]
        view = np.ascontiguousarray(data.transpose(0, *[a + 1 for a in to_view(axis)]))
        total = None
        for window in self.windows:
            logits = window(view)
            total = logits if total is None else total + logits
        if len(self.windows) > 1:
            total /= len(self.windows)
        return total.transpose(0, *[a + 1 for a in from_view(axis)])

    def preprocessed(self, files: Sequence[Path]) -> tuple[np.ndarray, CaseGeometry]:
        data, geometry = read_case(files, self.model.get("image_dimension", 3))
        return preprocess(data, geometry, self.model), geometry

    def predict_case(self, files: Sequence[Path], output_truncated: Path, save_probabilities: bool = False,
                     preprocessed: tuple[np.ndarray, CaseGeometry] | None = None) -> Path:
        """Segment one case (its channel files in order); writes ``output_truncated`` + the file ending."""
        data, geometry = preprocessed or self.preprocessed(files)
        segmentation, probabilities = final_segmentation(self.logits(data), geometry, self.model,
                                                         save_probabilities)
        path = Path(f"{output_truncated}{self.model['file_ending']}")
        write_segmentation(segmentation, geometry, path)
        if probabilities is not None:
            write_probabilities(probabilities, geometry, output_truncated)
        return path


def predict_cases(predictor: OnnxSlabPredictor, cases: dict[str, list[Path]], output: Path,
                  save_probabilities: bool, bar) -> None:
    """Every case of ``cases`` (name -> its channel files) into ``output``, the tqdm ``bar`` counting tiles."""
    for case, files in cases.items():
        data, geometry = predictor.preprocessed(files)
        bar.total = (bar.total or 0) + predictor.tiles_per_case(data.shape[1:])
        bar.set_postfix_str(case)
        predictor.predict_case(files, output / case, save_probabilities, (data, geometry))
