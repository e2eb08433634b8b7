"""nnUNetTrainer25D: slab input (slices z-k..z+k as channels of nnU-Net's planned 2D network)."""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as nnunet_trainer_module
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_25d.trainers.augmentation import blur_in_plane_only, configure_in_plane_augmentation
from nnunet_25d.planning.configuration import (
    DEFAULT_2D_NETWORK,
    SLAB_KEY,
    SLAB_NETWORK,
    TrainingSetup,
    derive_thin_slab_plans,
    preprocess_command,
    slices_per_step,
    training_patch_size,
    with_slice_axis,
)
from nnunet_25d.errors import PreprocessedDataMissing
from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor
from nnunet_25d.planning.inference_depth import robust_depth
from nnunet_25d.planning.self_configuration import SlabChoice, choose_slab, read_fingerprint
from nnunet_25d.trainers.checkpoints import SafeCheckpointLoading
from nnunet_25d.trainers.optimisation import AdamWWarmupCosine
from nnunet_25d.geometry.slab_context import SlabContextDataset, unwrapped, with_context_cropped


def require_preprocessed_data(trainer: nnUNetTrainer) -> None:
    """Fail early, naming the command to run, when the configuration's preprocessed data is missing."""
    folder = trainer.preprocessed_dataset_folder
    if not trainer.was_initialized and folder is not None and not os.path.isdir(folder):
        configuration = getattr(trainer, "data_configuration", None) or trainer.configuration_name
        command = preprocess_command(trainer.plans_manager.plans, configuration)
        raise PreprocessedDataMissing(f"no preprocessed data at {folder}: run `{command}` first")


def slab_network_architecture(source: dict, network_class: str, slab_size: int, extra_arch_kwargs: dict) -> dict:
    """The plans entry of a slab network around the configuration's planned 2D network (its kernels and strides
    get a slice axis of 1)."""
    architecture = source["architecture"]
    arch_kwargs = dict(architecture["arch_kwargs"])
    arch_kwargs["kernel_sizes"] = with_slice_axis(arch_kwargs["kernel_sizes"])
    arch_kwargs["strides"] = with_slice_axis(arch_kwargs["strides"])
    return {
        "network_class_name": network_class,
        "arch_kwargs": {
            "slab_size": slab_size,
            "network_2d": architecture.get("network_class_name", DEFAULT_2D_NETWORK),
            "slices_per_forward": slices_per_step(source),
            **extra_arch_kwargs,
            **arch_kwargs,
        },
        "_kw_requires_import": list(architecture.get("_kw_requires_import", [])),
    }


def derive_slab_plans(plans: dict, configuration: str, slab_size: int, network_class: str = SLAB_NETWORK,
                      extra_arch_kwargs: dict | None = None, setup: TrainingSetup = TrainingSetup(),
                      data_from: str | None = None, self_configuration: dict | None = None) -> dict:
    """Return a copy of ``plans`` whose ``configuration`` (a 2d one) is the slab configuration (on
    ``data_from``'s preprocessed data when given, e.g. ``3d_fullres`` for slices resampled to one spacing).
    ``self_configuration`` (why the slab size and data were chosen) is stored with it.

    Idempotent: plans that already hold the same derived configuration come back unchanged (as a copy).
    """
    extra = extra_arch_kwargs or {}
    marker = {"slab_size": slab_size, "network": network_class, **extra}
    if data_from:
        marker["data_from"] = data_from
    if self_configuration:
        marker["self_configuration"] = self_configuration

    def build(source: dict) -> None:
        source["architecture"] = slab_network_architecture(source, network_class, slab_size, extra)

    return derive_thin_slab_plans(plans, configuration, slab_size, marker, setup, build)


# what runs the network in the final validation on CPU: ONNX Runtime where installed (the same sliding window, logits
# equal to PyTorch's to float16 rounding, several times faster on CPU); PyTorch on GPUs
VALIDATION_BACKEND = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"
VALIDATION_ENGINE_LINE = "validation network on "  # read back by the benchmark's cost table


@contextmanager
def slab_validation_predictor():
    """nnU-Net's final validation builds its predictor by the name ``nnUNetPredictor`` in the trainer's module: for
    the duration it builds :class:`nnUNetSlabPredictor`, so cross-validation outputs come from the predictor that
    ``nnunet25d predict`` runs (nnU-Net offers no other hook without copying ``perform_actual_validation``)."""
    stock = nnunet_trainer_module.nnUNetPredictor
    nnunet_trainer_module.nnUNetPredictor = partial(nnUNetSlabPredictor, backend=VALIDATION_BACKEND)
    try:
        yield
    finally:
        nnunet_trainer_module.nnUNetPredictor = stock


def preprocessed_dataset(plans: dict) -> Path | None:
    """The dataset's folder under ``nnUNet_preprocessed`` (None where that variable is unset)."""
    preprocessed = os.environ.get("nnUNet_preprocessed")
    return None if preprocessed is None else Path(preprocessed) / plans.get("dataset_name", "")


def training_setup(plans: dict, configuration: str, axis: int, fingerprint: dict | None = None) -> TrainingSetup:
    """The depth of the training volumes (nnU-Net's fingerprint, :func:`robust_depth`; read from
    ``nnUNet_preprocessed`` unless given) and the GPUs of a DDP run, for a derivation."""
    gpus = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    source = plans.get("configurations", {}).get(configuration)
    if source is None or "spacing" not in source:
        return TrainingSetup(gpus=gpus)
    if fingerprint is None:
        fingerprint = read_fingerprint(preprocessed_dataset(plans))
    return TrainingSetup(robust_depth(fingerprint, plans, source, axis), gpus)


# what a subclass sets to fix what the self-configuration would choose (or to build another network)
FIXED_BY = ("slab_size", "data_configuration", "network_class", "derive_plans", "slab_axis")
# what a subclass sets to build another network: it keeps nnU-Net's SGD unless it names its optimiser
OTHER_NETWORK = ("network_class", "derive_plans", "extra_arch_kwargs")


class nnUNetTrainer25D(SafeCheckpointLoading, AdamWWarmupCosine, nnUNetTrainer):
    """Train on thin 3D patches of consecutive slices; each slice is predicted from its slab.

    The slab configuration is derived from the ``2d`` configuration before ``nnUNetTrainer.__init__`` runs, so
    the plans saved with the model (and used by ``nnUNetv2_predict``) are exactly those trained on. Its
    ``patch_size`` is the inference patch (deep enough to hold a whole volume); training uses the thin patch
    stored under ``nnunet_25d.training_patch_size`` and supervises only the slices whose slab lies in it.

    A step holds the 2d plan's batch of slices as that many patches of ``supervised_per_patch`` supervised slices
    (each with its context), so its slices are as independent as nnU-Net 2d's and foreground oversampling acts
    per slice. ``nnUNetTrainer25D`` itself configures its slab size and data from nnU-Net's fingerprint
    (:mod:`nnunet_25d.planning.self_configuration`; written to the training log and the plans); a subclass that sets one of
    :data:`FIXED_BY` (``_5slices``, ``Resampled``, other networks) keeps what it sets. It trains with AdamW, warm-up
    and cosine decay (on the benchmark data it learned the context-only class in every seed where nnU-Net's SGD +
    poly missed it in one of two); subclasses that build another network (:data:`OTHER_NETWORK`) keep nnU-Net's SGD
    unless they name an ``optimiser``.
    """

    slab_size: int = 3
    slab_axis: int = 0
    network_class: str = SLAB_NETWORK
    default_configuration: str = "2d"  # what the benchmark trains it on unless told otherwise
    data_configuration: str | None = None  # train on this configuration's preprocessed data (None: its own)
    supervised_per_patch: int | None = 1  # None: the fewest, deepest patches (the earlier design)
    self_configuring: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "self_configuring" not in cls.__dict__ and any(name in cls.__dict__ for name in FIXED_BY):
            cls.self_configuring = False
        if "optimiser" not in cls.__dict__ and any(name in cls.__dict__ for name in OTHER_NETWORK):
            cls.optimiser = "sgd"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        fingerprint = read_fingerprint(preprocessed_dataset(plans))  # read once: the slab choice and the depth
        self.slab_choice = self.slab_choice_for(plans, configuration, fingerprint)
        if self.slab_choice is not None:
            self.slab_size, self.data_configuration = self.slab_choice.slab_size, self.slab_choice.data_configuration
        setup = training_setup(plans, self.data_configuration or configuration, self.slab_axis, fingerprint)
        derived = (self.derive_chosen_plans(plans, configuration, setup, self.slab_choice) if self.self_configuring
                   else self.derive_plans(plans, configuration, setup))
        super().__init__(derived, configuration, fold, dataset_json, device)
        for line in self.slab_choice.reasons() if self.slab_choice is not None else []:
            self.print_to_log_file(f"2.5D self-configuration: {line}")

    def initialize(self) -> None:
        try:
            require_preprocessed_data(self)
        except PreprocessedDataMissing as error:
            if self.slab_choice is None or self.slab_choice.data_configuration is None:
                raise
            raise PreprocessedDataMissing(
                f"{error} ({type(self).__name__} chose {self.data_configuration}'s data: "
                f"{self.slab_choice.data_reason}); or train a slab fixed by name on the 2d data, e.g. "
                f"nnUNetTrainer25D_{self.slab_size}slices") from None
        super().initialize()

    @classmethod
    def batch_setup(cls, setup: TrainingSetup | None = None) -> TrainingSetup:
        """``setup`` (default: nothing known of the data) with this trainer's batch design."""
        return replace(setup or TrainingSetup(), supervised_per_patch=cls.supervised_per_patch)

    @classmethod
    def slab_choice_for(cls, plans: dict, configuration: str, fingerprint: dict | None = None) -> SlabChoice | None:
        """The self-configured slab and data (None for a trainer fixed by its class): the one stored in plans that
        are already derived, else chosen from the plans and the fingerprint (read from ``nnUNet_preprocessed``
        unless given)."""
        if not cls.self_configuring:
            return None
        stored = plans.get("configurations", {}).get(configuration, {}).get(SLAB_KEY, {}).get("self_configuration")
        if stored:
            return SlabChoice.from_plans_entry(stored)
        if fingerprint is None:
            fingerprint = read_fingerprint(preprocessed_dataset(plans))
        return choose_slab(plans, configuration, fingerprint)

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None = None) -> dict:
        """The plans this trainer trains on (and saves with the model), derived from nnU-Net's: the self-configured
        slab and data, or the class's, with the class's batch design."""
        return cls.derive_chosen_plans(plans, configuration, setup, cls.slab_choice_for(plans, configuration))

    @classmethod
    def derive_chosen_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None,
                            choice: SlabChoice | None) -> dict:
        """:meth:`derive_plans` with the slab choice already made (None: the class's own slab and data)."""
        slab_size, data, entry = ((cls.slab_size, cls.data_configuration, None) if choice is None else
                                  (choice.slab_size, choice.data_configuration, choice.as_plans_entry()))
        return derive_slab_plans(plans, configuration, slab_size, cls.network_class, cls.extra_arch_kwargs(),
                                 cls.batch_setup(setup), data, entry)

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        """Hyper-parameters a subclass adds to the network's plans entry."""
        return {}

    @property
    def context_width(self) -> int:
        return self.slab_size // 2

    def get_tr_and_val_datasets(self):
        return tuple(SlabContextDataset(dataset, self.context_width, self.slab_axis)
                     for dataset in super().get_tr_and_val_datasets())

    def get_dataloaders(self):
        with self.training_patch():
            return super().get_dataloaders()

    @contextmanager
    def training_patch(self):
        """nnU-Net's loaders and augmentation read ``configuration_manager.patch_size``: the thin training patch
        while they are built, the inference patch everywhere else."""
        inference = self.configuration_manager
        configuration = dict(inference.configuration, patch_size=training_patch_size(inference.configuration))
        self.configuration_manager = ConfigurationManager(configuration)
        try:
            yield
        finally:
            self.configuration_manager = inference

    def get_training_transforms(self, *args, **kwargs):
        pipeline = blur_in_plane_only(nnUNetTrainer.get_training_transforms(*args, **kwargs))
        return with_context_cropped(pipeline, self.context_width, self.slab_axis)

    def get_validation_transforms(self, *args, **kwargs):
        pipeline = nnUNetTrainer.get_validation_transforms(*args, **kwargs)
        return with_context_cropped(pipeline, self.context_width, self.slab_axis)

    def on_train_start(self) -> None:
        super().on_train_start()
        unwrapped(self.network).interior_only = True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        unwrapped(self.network).interior_only = False
        engine = "ONNX Runtime" if VALIDATION_BACKEND == "onnxruntime" and self.device.type == "cpu" else "PyTorch"
        self.print_to_log_file(f"{VALIDATION_ENGINE_LINE}{engine}")
        with slab_validation_predictor():
            super().perform_actual_validation(save_probabilities)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        self.print_to_log_file(
            f"2.5D: slab of {self.slab_size} slices, training patch {self.configuration_manager.patch_size} "
            f"({self.configuration_manager.configuration[SLAB_KEY]['supervised_slices']} supervised slices each), "
            f"batch {self.configuration_manager.batch_size}")
        return configure_in_plane_augmentation(self)
