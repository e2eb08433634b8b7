"""Shared steps of deriving a 2.5D configuration from one nnU-Net planned (each variant's derivation lives in its
trainer file and is built from these).

A derived configuration keeps the source plan's preprocessed data (same ``data_identifier``), spacing,
normalisation and in-plane patch, and turns the patch into a thin 3D patch of consecutive slices, so that
nnU-Net's own 3D data loader, augmentation, loss and sliding-window predictor hand a network its
neighbouring slices. The trainer writes the derived plans into the model folder, where
``nnUNetv2_predict`` reads them.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.errors import SetupError
from nnunet_25d.planning.inference_depth import inference_depth
from nnunet_25d.geometry.slab import MIN_PATCHES_PER_BATCH, SlabBatch, check_slab_size, slab_batch

SLAB_KEY = "nnunet_25d"
SLAB_NETWORK = "nnunet_25d.architectures.slab_network.SlabNetwork"
DEFAULT_2D_NETWORK = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
NNUNET_OPS_TO_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")  # arch_kwargs nnU-Net imports by name


class ConfigurationError(SetupError):
    """The plans cannot give a 2.5D configuration; the message names the fix."""


@dataclass(frozen=True)
class TrainingSetup:
    """What a derivation needs beyond the plans: the depth of the training volumes along the slab axis (a robust
    maximum from nnU-Net's fingerprint, :func:`~nnunet_25d.planning.inference_depth.robust_volume_depth`; None: unknown)
    and the number of GPUs a step is split over (each must get a patch); ``supervised_per_patch``: the batch design
    (:func:`~nnunet_25d.geometry.slab.slab_batch`; None: the fewest, deepest patches)."""

    volume_depth: float | None = None
    gpus: int = 1
    supervised_per_patch: int | None = None

    @property
    def min_patches(self) -> int:
        return max(MIN_PATCHES_PER_BATCH, self.gpus)


def dataset_id(plans: dict) -> str:
    """``Dataset525_Name`` -> ``525`` (the name itself if it does not follow nnU-Net's pattern)."""
    name = plans.get("dataset_name", "<DATASET>")
    digits = name[len("Dataset"):].split("_")[0]
    return str(int(digits)) if name.startswith("Dataset") and digits.isdigit() else name


def preprocess_command(plans: dict, configuration: str) -> str:
    """The nnU-Net command that writes ``configuration``'s preprocessed data for these plans."""
    plans_name = plans.get("plans_name", "nnUNetPlans")
    if plans_name == "nnUNetPlans":
        return f"nnUNetv2_plan_and_preprocess -d {dataset_id(plans)} -c {configuration}"
    return f"nnUNetv2_preprocess -d {dataset_id(plans)} -plans_name {plans_name} -c {configuration}"


def check_source(plans: dict, configuration: str) -> None:
    available = sorted(plans.get("configurations", {}))
    if configuration not in available:
        plans_name = plans.get("plans_name", "nnUNetPlans")
        how = (f"`{preprocess_command(plans, configuration)}`" if plans_name == "nnUNetPlans" else
               f"the planner that wrote them (`nnUNetv2_plan_experiment -d {dataset_id(plans)} -pl <PLANNER> "
               f"-overwrite_plans_name {plans_name}`), then `{preprocess_command(plans, configuration)}`")
        raise ConfigurationError(
            f"plans '{plans_name}' of {plans.get('dataset_name', '?')} have no configuration "
            f"'{configuration}' (available: {', '.join(available) or 'none'}). Plan it with {how} "
            f"(the slab trainers build on `2d`)."
        )
    median_shape = plans.get("original_median_shape_after_transp", [2])
    if median_shape and median_shape[0] <= 1:
        raise ConfigurationError(
            f"{plans.get('dataset_name', 'this dataset')} is a 2D dataset (median shape {median_shape}): "
            f"there are no neighbouring slices for a 2.5D model. Train nnU-Net's own 2d configuration "
            f"(`nnUNetv2_train {dataset_id(plans)} 2d <FOLD>` with the default nnUNetTrainer) instead."
        )


def with_slice_axis(per_stage: list) -> list:
    return [[1, *entry] if len(entry) == 2 else list(entry) for entry in per_stage]


def resolved_source(plans: dict, configuration: str, marker: dict) -> tuple[dict, dict] | tuple[dict, None]:
    """(plans copy, resolved configuration to derive) — or (plans copy, None) if already derived with ``marker``."""
    check_source(plans, configuration)
    derived = copy.deepcopy(plans)
    source = copy.deepcopy(PlansManager(derived).get_configuration(configuration).configuration)
    stored = source.get(SLAB_KEY)
    if stored is not None and all(stored.get(key) == value for key, value in marker.items()):
        return derived, None
    if stored is not None:
        raise ConfigurationError(
            f"configuration '{configuration}' was already derived for {source[SLAB_KEY]}, not {marker}: "
            f"train from the plans in nnUNet_preprocessed, not from a model folder's plans.json"
        )
    source.pop("inherits_from", None)
    return derived, source


def slab_patches(source: dict, batch: SlabBatch, axis: int, depth: int) -> None:
    """Give ``source`` (a 3D configuration) the training batch of thin patches and an inference patch ``depth``
    deep along ``axis``; the training patch and what the batch was derived from go under ``SLAB_KEY``."""
    training_patch = list(source["patch_size"])
    training_patch[axis] = batch.patch_depth
    inference_patch = list(source["patch_size"])
    inference_patch[axis] = depth
    source.update(patch_size=inference_patch, batch_size=batch.patches)
    source.setdefault(SLAB_KEY, {}).update(training_patch_size=training_patch, slab_axis=axis,
                                           supervised_slices=batch.supervised_slices)


def slices_per_step(configuration: dict) -> int:
    """Supervised slices of a training step: how many slices the network computes at once at inference, too."""
    return configuration["batch_size"] * configuration[SLAB_KEY]["supervised_slices"]


def training_patch_size(configuration: dict) -> list[int]:
    """The thin patch a slab configuration trains on (its ``patch_size`` is the deeper inference patch)."""
    return list(configuration[SLAB_KEY]["training_patch_size"])


# what a 2d configuration takes from another configuration to train on that one's preprocessed data
DATA_KEYS = ("data_identifier", "spacing", "median_image_size_in_voxels", "resampling_fn_data",
             "resampling_fn_data_kwargs", "resampling_fn_seg", "resampling_fn_seg_kwargs",
             "resampling_fn_probabilities", "resampling_fn_probabilities_kwargs")


def with_data_of(plans: dict, source: dict, data_configuration: str) -> None:
    """Let ``source`` (a 2d configuration) read ``data_configuration``'s preprocessed data (e.g. 3d_fullres: the
    same in-plane grid, slices resampled to one spacing), predicting at that spacing and resampling back."""
    check_source(plans, data_configuration)
    data = PlansManager(plans).get_configuration(data_configuration).configuration
    if len(data["spacing"]) != 3:
        raise ConfigurationError(f"'{data_configuration}' is not a 3D configuration: z-resampled slab data come "
                                 f"from a 3D one such as 3d_fullres")
    if list(data["spacing"][1:]) != list(source["spacing"]):
        raise ConfigurationError(f"'{data_configuration}' resamples in-plane to {data['spacing'][1:]}, the 2d plan "
                                 f"to {source['spacing']}: the 2d network would see another in-plane grid")
    source.update({key: copy.deepcopy(data[key]) for key in DATA_KEYS if key in data})


def thin_slab_source(plans: dict, configuration: str, slab_size: int, marker: dict,
                      setup: TrainingSetup = TrainingSetup()) -> tuple[dict, dict | None]:
    """(plans copy, 2d configuration with thin training patches, a deep inference patch and the batch for
    ``slab_size``) — or (copy, None) when the plans already hold the configuration derived with ``marker``.
    ``marker["data_from"]`` (e.g. ``3d_fullres``) trains on that configuration's preprocessed data."""
    check_slab_size(slab_size)
    derived, source = resolved_source(plans, configuration, marker)
    if source is None:
        return derived, None
    if len(source["patch_size"]) != 2:
        raise ConfigurationError(
            f"configuration '{configuration}' has a {len(source['patch_size'])}D patch {source['patch_size']}; "
            f"2.5D trainers derive their slab configuration from a 2d configuration: use `2d` as CONFIGURATION "
            f"(e.g. `nnUNetv2_train {dataset_id(plans)} 2d <FOLD> -tr nnUNetTrainer25D`)"
        )
    median_depth = plans.get("original_median_shape_after_transp", [slab_size])[0]
    if marker.get("data_from"):
        with_data_of(derived, source, marker["data_from"])
        median_depth = source["median_image_size_in_voxels"][0]
    batch = slab_batch(source["batch_size"], slab_size, int(median_depth), setup.min_patches,
                       setup.supervised_per_patch)
    source["patch_size"] = [1, *source["patch_size"]]
    slab_patches(source, batch, 0, inference_depth(median_depth, setup.volume_depth))
    return derived, source


def store_derived(derived: dict, configuration: str, source: dict, marker: dict) -> dict:
    source[SLAB_KEY] = {**marker, **source.get(SLAB_KEY, {})}
    derived["configurations"][configuration] = source
    return derived


def derive_thin_slab_plans(plans: dict, configuration: str, slab_size: int, marker: dict,
                           setup: TrainingSetup, build: Callable[[dict], None]) -> dict:
    """Plans whose ``configuration`` (a 2d one) is thin-slab training data for a network ``build`` puts into the
    configuration (its ``architecture``; it may also round the in-plane patch). Returns a copy of ``plans``;
    plans already derived with ``marker`` (and the same batch design) come back unchanged."""
    marker = {**marker, "supervised_per_patch": setup.supervised_per_patch}
    derived, source = thin_slab_source(plans, configuration, slab_size, marker, setup)
    if source is None:
        return derived
    build(source)
    return store_derived(derived, configuration, source, marker)


def two_d_op(name: str | None) -> str | None:
    """``torch.nn.modules.conv.Conv3d`` -> ``...Conv2d`` (also norm and dropout ops; only the class name changes);
    None stays None."""
    if name is None:
        return None
    module, _, class_name = name.rpartition(".")
    return f"{module}.{class_name.replace('3d', '2d').replace('3D', '2D')}" if module else \
        class_name.replace("3d", "2d").replace("3D", "2D")


def nnunet_3d_unet_ops() -> dict:
    """The operators nnU-Net's planner writes for a 3D U-Net (conv, instance norm, no dropout, leaky ReLU), as
    ``arch_kwargs`` entries; a fresh dict each call."""
    return {
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
