"""Derive a 2.5D configuration from the ``2d`` configuration nnU-Net planned.

The derived configuration keeps the 2d plan's preprocessed data (same ``data_identifier``), spacing,
normalisation and in-plane patch, and turns the patch into a thin 3D patch of consecutive slices, so that
nnU-Net's own 3D data loader, augmentation, loss and sliding-window predictor hand a network its
neighbouring slices. The trainer writes the derived plans into the model folder, where
``nnUNetv2_predict`` reads them.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.anisotropy import anisotropic_topology
from nnunet_25d.inference_patch import inference_depth
from nnunet_25d.slab import MIN_PATCHES_PER_BATCH, SlabBatch, check_slab_size, slab_batch

SLAB_KEY = "nnunet_25d"
SLAB_NETWORK = "nnunet_25d.architectures.slab_network.SlabNetwork"
DEFAULT_2D_NETWORK = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
ANISO_NETWORK = "nnunet_25d.architectures.aniso_unet.AnisoUNet"
MORPH_MLP_NETWORK = "nnunet_25d.architectures.morph_mlp_slab_network.MorphMLPSlabNetwork"
THIN_SLAB_CONTEXT = 5  # the aniso network's thin patch is as deep as a 5-slice slab model's


class ConfigurationError(ValueError):
    """The plans cannot give a 2.5D configuration; the message names the fix."""


@dataclass(frozen=True)
class TrainingSetup:
    """What a derivation needs beyond the plans: the deepest training volume along the slab axis (from nnU-Net's
    fingerprint; None: unknown) and the number of GPUs a step is split over (each must get a patch)."""

    max_volume_depth: float | None = None
    gpus: int = 1

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


def _check_source(plans: dict, configuration: str) -> None:
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


def _with_slice_axis(per_stage: list) -> list:
    return [[1, *entry] if len(entry) == 2 else list(entry) for entry in per_stage]


def _resolved_source(plans: dict, configuration: str, marker: dict) -> tuple[dict, dict] | tuple[dict, None]:
    """(plans copy, resolved configuration to derive) — or (plans copy, None) if already derived with ``marker``."""
    _check_source(plans, configuration)
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


def _with_data_of(plans: dict, source: dict, data_configuration: str) -> None:
    """Let ``source`` (a 2d configuration) read ``data_configuration``'s preprocessed data (e.g. 3d_fullres: the
    same in-plane grid, slices resampled to one spacing), predicting at that spacing and resampling back."""
    _check_source(plans, data_configuration)
    data = PlansManager(plans).get_configuration(data_configuration).configuration
    if len(data["spacing"]) != 3:
        raise ConfigurationError(f"'{data_configuration}' is not a 3D configuration: z-resampled slab data come "
                                 f"from a 3D one such as 3d_fullres")
    if list(data["spacing"][1:]) != list(source["spacing"]):
        raise ConfigurationError(f"'{data_configuration}' resamples in-plane to {data['spacing'][1:]}, the 2d plan "
                                 f"to {source['spacing']}: the 2d network would see another in-plane grid")
    source.update({key: copy.deepcopy(data[key]) for key in DATA_KEYS if key in data})


def _thin_slab_source(plans: dict, configuration: str, slab_size: int, marker: dict,
                      setup: TrainingSetup = TrainingSetup()) -> tuple[dict, dict | None]:
    """(plans copy, 2d configuration with thin training patches, a deep inference patch and the batch for
    ``slab_size``) — or (copy, None) when the plans already hold the configuration derived with ``marker``.
    ``marker["data_from"]`` (e.g. ``3d_fullres``) trains on that configuration's preprocessed data."""
    check_slab_size(slab_size)
    derived, source = _resolved_source(plans, configuration, marker)
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
        _with_data_of(derived, source, marker["data_from"])
        median_depth = source["median_image_size_in_voxels"][0]
    batch = slab_batch(source["batch_size"], slab_size, int(median_depth), setup.min_patches)
    source["patch_size"] = [1, *source["patch_size"]]
    slab_patches(source, batch, 0, inference_depth(median_depth, setup.max_volume_depth))
    return derived, source


def _store(derived: dict, configuration: str, source: dict, marker: dict) -> dict:
    source[SLAB_KEY] = {**marker, **source.get(SLAB_KEY, {})}
    derived["configurations"][configuration] = source
    return derived


def derive_slab_plans(
    plans: dict,
    configuration: str,
    slab_size: int,
    network_class: str = SLAB_NETWORK,
    extra_arch_kwargs: dict | None = None,
    setup: TrainingSetup = TrainingSetup(),
    data_from: str | None = None,
) -> dict:
    """Return a copy of ``plans`` whose ``configuration`` is the slab configuration (on ``data_from``'s
    preprocessed data when given, e.g. ``3d_fullres`` for slices resampled to one spacing).

    Idempotent: plans that already hold the same derived configuration come back unchanged (as a copy).
    """
    marker = {"slab_size": slab_size, "network": network_class, **(extra_arch_kwargs or {})}
    if data_from:
        marker["data_from"] = data_from
    derived, source = _thin_slab_source(plans, configuration, slab_size, marker, setup)
    if source is None:
        return derived
    architecture = source["architecture"]
    arch_kwargs = dict(architecture["arch_kwargs"])
    arch_kwargs["kernel_sizes"] = _with_slice_axis(arch_kwargs["kernel_sizes"])
    arch_kwargs["strides"] = _with_slice_axis(arch_kwargs["strides"])
    source["architecture"] = {
        "network_class_name": network_class,
        "arch_kwargs": {
            "slab_size": slab_size,
            "network_2d": architecture.get("network_class_name", DEFAULT_2D_NETWORK),
            "slices_per_forward": slices_per_step(source),
            **(extra_arch_kwargs or {}),
            **arch_kwargs,
        },
        "_kw_requires_import": list(architecture.get("_kw_requires_import", [])),
    }
    return _store(derived, configuration, source, marker)


def derive_morph_mlp_plans(plans: dict, configuration: str, slab_size: int, size: str,
                           hyper_parameters: dict | None = None, setup: TrainingSetup = TrainingSetup()) -> dict:
    """Plans whose ``configuration`` (a 2d one) trains :class:`MorphMLPSlabNetwork` of table entry ``size``.

    Thin patch and batch as :func:`derive_slab_plans`; the in-plane patch is rounded up to a multiple of the
    encoder's largest stride (32; nnU-Net pads), chunk lengths are chosen to divide the token grid of every stage,
    the two convolutional levels take the 2d plan's first two feature counts.
    """
    from nnunet_25d.architectures.morph_mlp_slab_network import MORPH_MLP_STRIDES
    from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES, chunk_lengths_for

    if size not in MORPH_MLP_SIZES:
        raise ConfigurationError(f"MorphMLP size {size!r} is not in the table; choose one of {sorted(MORPH_MLP_SIZES)}")
    marker = {"slab_size": slab_size, "network": MORPH_MLP_NETWORK, "size": size, **(hyper_parameters or {})}
    derived, source = _thin_slab_source(plans, configuration, slab_size, marker, setup)
    if source is None:
        return derived
    largest_stride = 2 ** (len(MORPH_MLP_STRIDES) - 1)
    depth, *patch_in_plane = source["patch_size"]
    patch_in_plane = [math.ceil(n / largest_stride) * largest_stride for n in patch_in_plane]
    table = MORPH_MLP_SIZES[size]
    features = source["architecture"]["arch_kwargs"]["features_per_stage"]
    source[SLAB_KEY]["training_patch_size"][1:] = patch_in_plane
    source.update(
        patch_size=[depth, *patch_in_plane],
        architecture={
            "network_class_name": MORPH_MLP_NETWORK,
            "arch_kwargs": {
                "slab_size": slab_size,
                "slices_per_forward": slices_per_step(source),
                "depths": list(table["depths"]),
                "dims": list(table["dims"]),
                "chunk_lengths": chunk_lengths_for(patch_in_plane, table["dims"]),
                "conv_features": list(features[:2]),
                "strides": MORPH_MLP_STRIDES,
                **(hyper_parameters or {}),
            },
            "_kw_requires_import": [],
        },
    )
    return _store(derived, configuration, source, marker)


def _two_d_op(name: str | None) -> str | None:
    """``torch.nn.modules.conv.Conv3d`` -> ``...Conv2d`` (also norm and dropout ops; only the class name changes);
    None stays None."""
    if name is None:
        return None
    module, _, class_name = name.rpartition(".")
    return f"{module}.{class_name.replace('3d', '2d').replace('3D', '2D')}" if module else \
        class_name.replace("3d", "2d").replace("3D", "2D")


def _view_slices_per_step(plans: dict, source: dict, plane_pixels: int) -> int:
    """Slices per step whose pixels add up to a step of nnU-Net's 2d (or of the 3D plan, without a 2d plan)."""
    reference = plans["configurations"].get("2d", source)
    budget = reference.get("batch_size", 2) * math.prod(reference.get("patch_size", [plane_pixels]))
    return max(1, round(budget / plane_pixels))


def derive_view_plans(plans: dict, configuration: str, view: str, slab_size: int,
                      setup: TrainingSetup = TrainingSetup()) -> dict:
    """Plans whose ``configuration`` (a 3D one, e.g. ``3d_fullres``) trains a slab model along ``view``'s axis.

    The patch keeps the 3D plan's extent along the two plane axes; along the slab axis it is thin in training
    (:func:`~nnunet_25d.slab.slab_batch` of a 2d step's pixels) and deep at inference
    (:func:`~nnunet_25d.inference_patch.inference_depth`). The 2D network takes the 3D plan's kernel sizes and
    strides of the plane axes: where the plane holds the coarse slice axis (coronal, sagittal of an anisotropic
    scan) these are nnU-Net's own anisotropic choices (1x3 kernels, no pooling of the slice axis until the spacings
    are comparable). Data, spacing and normalisation are the 3D plan's, so every view sees the same voxels.
    """
    from nnunet_25d.views import plane_axes, slab_axis_of

    check_slab_size(slab_size)
    axis = slab_axis_of(view)
    marker = {"slab_size": slab_size, "network": SLAB_NETWORK, "view": view}
    derived, source = _resolved_source(plans, configuration, marker)
    if source is None:
        return derived
    if len(source["patch_size"]) != 3:
        raise ConfigurationError(
            f"view trainers take slabs along any axis of the 3D data: train them on a 3D configuration, e.g. "
            f"`nnUNetv2_train {dataset_id(plans)} 3d_fullres <FOLD> -tr nnUNetTrainer25D{view.capitalize()}` "
            f"(configuration '{configuration}' is {len(source['patch_size'])}D)"
        )
    plane_pixels = math.prod(source["patch_size"][a] for a in plane_axes(axis))
    median_depth = source.get("median_image_size_in_voxels", source["patch_size"])[axis]
    batch = slab_batch(_view_slices_per_step(plans, source, plane_pixels), slab_size, int(median_depth),
                       setup.min_patches)
    slab_patches(source, batch, axis, inference_depth(median_depth, setup.max_volume_depth))
    architecture = source["architecture"]
    kwargs = dict(architecture["arch_kwargs"])

    def slab_axis_one(per_stage: list) -> list:
        return [[1 if a == axis else n for a, n in enumerate(entry)] for entry in per_stage]

    kwargs.update(
        kernel_sizes=slab_axis_one(kwargs["kernel_sizes"]),
        strides=slab_axis_one(kwargs["strides"]),
        conv_op=_two_d_op(kwargs["conv_op"]),
        norm_op=_two_d_op(kwargs.get("norm_op")),
        dropout_op=_two_d_op(kwargs.get("dropout_op")),
    )
    source["architecture"] = {
        "network_class_name": SLAB_NETWORK,
        "arch_kwargs": {"slab_size": slab_size, "slab_axis": axis, "slices_per_forward": slices_per_step(source),
                        "network_2d": architecture.get("network_class_name", DEFAULT_2D_NETWORK), **kwargs},
        "_kw_requires_import": list(architecture.get("_kw_requires_import", [])),
    }
    plane_spacing = [source["spacing"][a] for a in plane_axes(axis)]
    return _store(derived, configuration, source, {**marker, "plane_spacing": plane_spacing})


def derive_aniso_plans(plans: dict, configuration: str, attention: bool = True, max_features: int = 320) -> dict:
    """Plans whose ``configuration`` uses :class:`AnisoUNet` with stages computed from the spacing.

    From ``3d_fullres`` (or any 3D configuration) the patch, batch and data stay nnU-Net's. From ``2d`` the patch
    becomes a thin 3D slab of the 2d plan's in-plane size on the 2d plan's data (slice spacing: the dataset's
    median), so the model costs about what nnU-Net's 2d costs per step.
    """
    marker = {"network": ANISO_NETWORK, "attention": attention}
    derived, source = _resolved_source(plans, configuration, marker)
    if source is None:
        return derived
    architecture = source["architecture"]
    kwargs_2d_or_3d = architecture["arch_kwargs"]
    if len(source["patch_size"]) == 2:
        median_depth = plans.get("original_median_shape_after_transp", [1])[0]
        batch = slab_batch(source["batch_size"], THIN_SLAB_CONTEXT, int(median_depth))
        source.update(patch_size=[batch.patch_depth, *source["patch_size"]], batch_size=batch.patches)
        spacing = [plans["original_median_spacing_after_transp"][0], *source["spacing"]]
        marker["thin_slab"] = True
    else:
        spacing = source["spacing"]
    topology = anisotropic_topology(spacing, source["patch_size"], max_stages=len(kwargs_2d_or_3d["strides"]))
    n = len(topology.kernel_sizes)
    base = kwargs_2d_or_3d["features_per_stage"][0]
    source["architecture"] = {
        "network_class_name": ANISO_NETWORK,
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [min(base * 2 ** i, max_features) for i in range(n)],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": topology.kernel_sizes,
            "strides": topology.strides,
            "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
            "attention": attention,
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return _store(derived, configuration, source, marker)
