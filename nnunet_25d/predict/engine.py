"""The engine that runs a model in ``nnunet25d predict``, and the ONNX graphs cached beside its checkpoints.

ONNX Runtime runs every model whose whole inference is a 2D network over slabs or slices (the slab trainers, the
views, nnU-Net 2d) through nnU-Net's default pipeline (:func:`~nnunet_25d.export.description.check_exportable`):
the runtime of ``nnunet25d predict-onnx``, the same exact sliding window. Everything else (3D networks, cascades,
other preprocessors, CUDA) runs on PyTorch through nnU-Net's predictor.

Each fold's graph is exported on first use to ``fold_F/<checkpoint>.onnx`` with ``<checkpoint>.onnx.json`` beside
it: the SHA-256 of the checkpoint, plans.json and dataset.json it was made from, and the package version. A graph is
used only while all four still match, so a retrained fold is exported again and never runs a stale graph.
"""
from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from nnunet_25d import __version__
from nnunet_25d.deploy.model_description import ModelDescriptionError
from nnunet_25d.errors import GraphMismatch, NotExportable, UserError
from nnunet_25d.files import write_text_atomically

BACKENDS = ("auto", "onnxruntime", "torch")
GRAPH_FORMAT = 1
FAST_EXPORTERS = ("torchscript", "dynamo")  # 0.1 s against 2-4 s for a U-Net; dynamo takes what TorchScript cannot


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def chosen_backend(requested: str, device: str) -> str:
    """``auto``: ONNX Runtime on CPU (measured faster at every size, benchmarks/results/predict_engines.md),
    PyTorch on CUDA and MPS."""
    if requested == "torch":
        return "torch"
    if device != "cpu":
        if requested == "onnxruntime":
            raise UserError(f"--backend onnxruntime runs on the CPU, not on {device}: use --backend torch (the "
                            f"default there), or `nnunet25d export` and `nnunet25d predict-onnx --providers "
                            f"CUDAExecutionProvider` with onnxruntime-gpu installed")
        return "torch"
    if not onnxruntime_available():
        if requested == "onnxruntime":
            raise UserError("--backend onnxruntime needs ONNX Runtime: pip install onnxruntime")
        print("nnunet25d predict: ONNX Runtime is not installed (pip install onnxruntime); running on PyTorch")
        return "torch"
    return "onnxruntime"


def plain_3d_network(plans: dict, configuration: str) -> bool:
    """The plans give ``configuration`` one of nnU-Net's own 3D networks (never exported: known without loading it)."""
    architecture = plans.get("configurations", {}).get(configuration, {}).get("architecture") or {}
    name = architecture.get("network_class_name", "")
    convolution = str((architecture.get("arch_kwargs") or {}).get("conv_op", ""))
    return bool(name) and not name.startswith("nnunet_25d.") and convolution.endswith("Conv3d")


def file_digest(path: Path) -> str:
    stat = Path(path).stat()
    return _digest(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_folder: Path, fold: int | str, checkpoint: str) -> dict[str, Any]:
    """What a fold's graph is made from: a graph whose sidecar records another key is never used."""
    return {"format": GRAPH_FORMAT, "nnunet_25d": __version__,
            "checkpoint_sha256": file_digest(model_folder / f"fold_{fold}" / checkpoint),
            "plans_sha256": file_digest(model_folder / "plans.json"),
            "dataset_sha256": file_digest(model_folder / "dataset.json")}


def graph_files(folder: Path, checkpoint: str) -> tuple[Path, Path]:
    """``checkpoint_final.pth`` -> ``checkpoint_final.onnx`` and its sidecar ``checkpoint_final.onnx.json``."""
    graph = folder / f"{Path(checkpoint).stem}.onnx"
    return graph, graph.with_name(graph.name + ".json")


def cached_description(folder: Path, checkpoint: str, key: dict[str, Any], quiet: bool = False
                       ) -> dict[str, Any] | None:
    """The model description stored with a fold's graph, when graph and sidecar exist and the key matches (an
    unreadable sidecar is said in one line unless ``quiet``)."""
    graph, sidecar = graph_files(folder, checkpoint)
    if not sidecar.is_file():
        return None
    try:
        entry = json.loads(sidecar.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        if not quiet:
                print(f"nnunet25d predict: cached graph {sidecar} unreadable ({type(error).__name__}); exporting it "
                  f"again")
        return None
    if entry.get("key") != key or not graph.is_file():
        return None
    return entry["description"]


def graphs_cached(model_folder: Path, folds: list, checkpoint: str) -> bool:
    """Every fold's graph is cached for its checkpoint as it is now (then no checkpoint needs unpickling)."""
    cache = GraphCache(model_folder, checkpoint)
    return all(cached_description(cache.folder(fold), checkpoint, cache_key(model_folder, fold, checkpoint),
                                  quiet=True) is not None for fold in folds)


class GraphCache:
    """Each fold's graph in its fold folder, or, where that folder cannot be written, in a folder for this run.

    A read-only model folder keeps serving the graphs exported into it before (e.g. when it was built)."""

    def __init__(self, model_folder: Path, checkpoint: str):
        self.model_folder, self.checkpoint = model_folder, checkpoint
        self._run_folder: tempfile.TemporaryDirectory | None = None

    def folder(self, fold: int | str, writing: bool = False) -> Path:
        """Where fold ``fold``'s graph is read from (an export of this run, else the fold folder) or, ``writing``,
        goes to."""
        fold_folder = self.model_folder / f"fold_{fold}"
        if self._run_folder is not None and graph_files(self._run_fold(fold), self.checkpoint)[1].is_file():
            return self._run_fold(fold)
        if not writing or self._writable(fold_folder):
            return fold_folder
        if self._run_folder is None:
            self._run_folder = tempfile.TemporaryDirectory(prefix="nnunet25d_graphs_")
            print(f"nnunet25d predict: {self.model_folder} cannot be written; its ONNX graphs are exported for this "
                  f"run only")
        self._run_fold(fold).mkdir(exist_ok=True)
        return self._run_fold(fold)

    def _run_fold(self, fold: int | str) -> Path:
        return Path(self._run_folder.name) / f"fold_{fold}"

    @staticmethod
    def _writable(folder: Path) -> bool:
        try:
            with tempfile.TemporaryFile(dir=folder):
                return True
        except OSError:
            return False

    def forget(self, fold: int | str) -> None:
        for path in graph_files(self.folder(fold, writing=True), self.checkpoint):
            path.unlink(missing_ok=True)


def export_graphs(cache: GraphCache, folds: list, keys: dict, trainer: str, identity: dict[str, Any],
                  args: Any) -> dict:
    """Export ``folds`` (torch and nnU-Net are imported only here); returns each fold's description."""
    from nnunet_25d.deploy.onnx_graph import check_graph_matches
    from nnunet_25d.export.description import check_exportable, model_description
    from nnunet_25d.export.exporter import example_slabs, export_fold, loaded_predictor
    from nnunet_25d.inference.model_folder import check_checkpoints_load_safely

    check_checkpoints_load_safely(cache.model_folder, folds, cache.checkpoint, args)

    predictor = loaded_predictor(cache.model_folder, folds, cache.checkpoint)
    check_exportable(predictor, trainer)
    description = model_description(predictor, {**identity, "folds": folds, "checkpoint": cache.checkpoint})
    del description["folds"]
    example = example_slabs(description)
    for fold, parameters in zip(folds, predictor.list_of_parameters):
        graph, sidecar = graph_files(cache.folder(fold, writing=True), cache.checkpoint)
        exported = export_fold(predictor, parameters, graph, example, exporters=FAST_EXPORTERS)
        try:
            check_graph_matches(exported["largest_difference_to_torch"], f"fold {fold}'s ONNX graph")
        except GraphMismatch:
            graph.unlink(missing_ok=True)
            raise
        write_text_atomically(sidecar, json.dumps({"key": keys[fold], "description": description,
                                                   "export": exported}, indent=1))
    return {fold: description for fold in folds}


def onnx_predictor(model_folder: Path, folds: list, checkpoint: str, trainer: str, identity: dict[str, Any],
                   options: dict[str, Any], args: Any = None):
    """An :class:`~nnunet_25d.deploy.predictor.OnnxSlabPredictor` on the model's cached graphs (exported where
    missing or stale), or, with one line saying why, None: the caller runs PyTorch."""
    from nnunet_25d.deploy.predictor import OnnxSlabPredictor

    cache = GraphCache(model_folder, checkpoint)
    keys = {fold: cache_key(model_folder, fold, checkpoint) for fold in folds}
    for attempt in range(2):
        descriptions = {fold: cached_description(cache.folder(fold), checkpoint, keys[fold]) for fold in folds}
        missing = [fold for fold in folds if descriptions[fold] is None]
        try:
            if missing:
                descriptions.update(export_graphs(cache, missing, keys, trainer, identity, args))
        except (NotExportable, GraphMismatch) as error:
            print(f"nnunet25d predict: running on PyTorch ({error})")
            return None
        except UserError:  # a checkpoint that must not be unpickled: the torch path would refuse it too
            raise
        except Exception as error:  # an exporter's own failure: the torch path still predicts
            print(f"nnunet25d predict: ONNX export failed ({type(error).__name__}: {str(error)[:200]}); running "
                  f"on PyTorch")
            return None
        graphs = [graph_files(cache.folder(fold), checkpoint)[0] for fold in folds]
        model = {**descriptions[folds[0]], "folds": [{"fold": fold, "file": str(g)} for fold, g in zip(folds, graphs)]}
        try:
            return OnnxSlabPredictor.from_graphs(model, graphs, **options)
        except ModelDescriptionError as error:
            if attempt:
                print(f"nnunet25d predict: running on PyTorch ({error})")
                return None
            print("nnunet25d predict: a cached graph is unreadable; exporting it again")
            for fold in folds:
                cache.forget(fold)
    return None

