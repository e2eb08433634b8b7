"""The runtime's model description, read from an initialised nnU-Net predictor (the model folder's plans,
dataset.json and checkpoint, as ``nnUNetv2_predict`` reads them)."""
from __future__ import annotations

from typing import Any

from nnunetv2.configuration import ANISO_THRESHOLD
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_25d.deploy.model_description import NORMALIZATION_SCHEMES
from nnunet_25d.deploy.onnx_graph import is_plain_2d_network
from nnunet_25d.errors import NotExportable
from nnunet_25d.inference.slab_predictor import GAUSSIAN_SIGMA_SCALE, is_slab_network
from nnunet_25d.geometry.slab_context import unwrapped
from nnunet_25d.geometry.views import plane_axes

RESAMPLING_FUNCTION = "resample_data_or_seg_to_shape"  # nnU-Net's default: the runtime reproduces this one


def check_exportable(predictor: nnUNetPredictor, trainer: str) -> None:
    network = unwrapped(predictor.network)
    if not (is_slab_network(network) or is_plain_2d_network(network)):
        raise NotExportable(f"{trainer}'s network ({type(network).__name__}) is neither a slab network nor a 2D "
                            f"network: only models whose whole inference is a 2D network over slabs or slices "
                            f"export (the slab trainers, the views, nnU-Net 2d); predict this model with "
                            f"`nnunet25d predict --backend torch`")
    configuration = predictor.configuration_manager.configuration
    unsupported = [scheme for scheme in predictor.configuration_manager.normalization_schemes
                   if scheme not in NORMALIZATION_SCHEMES]
    problems = [f"normalisation {', '.join(unsupported)}" if unsupported else "",
                f"preprocessor {configuration['preprocessor_name']}"
                if configuration["preprocessor_name"] != "DefaultPreprocessor" else "",
                f"image reader {predictor.plans_manager.plans['image_reader_writer']}"
                if predictor.plans_manager.plans["image_reader_writer"] != "SimpleITKIO" else "",
                *[f"{key} {configuration[key]}" for key in ("resampling_fn_data", "resampling_fn_probabilities")
                  if configuration[key] != RESAMPLING_FUNCTION],
                "a previous stage (cascade)" if predictor.configuration_manager.previous_stage_name else ""]
    problems = [p for p in problems if p]
    if problems:
        raise NotExportable(f"the runtime reproduces nnU-Net's default pipeline only; this model uses "
                            f"{'; '.join(problems)}: predict it with `nnunet25d predict`")


def resampling_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = {key: value for key, value in kwargs.items() if key != "is_seg"}
    kwargs.setdefault("separate_z_anisotropy_threshold", ANISO_THRESHOLD)
    return kwargs


def slab_geometry(predictor: nnUNetPredictor) -> dict[str, Any]:
    """Slab size and axis, in-plane tile and mirrored volume axes; nnU-Net's 2D network is a slab network of one
    slice along the first axis (its mirror axes count the 2D patch's axes, hence + 1)."""
    network = unwrapped(predictor.network)
    patch = predictor.configuration_manager.patch_size
    mirror_axes = list(predictor.allowed_mirroring_axes or [])
    if not is_slab_network(network):
        return {"slab_size": 1, "slab_axis": 0, "tile": [int(n) for n in patch],
                "mirror_axes": [axis + 1 for axis in mirror_axes]}
    return {"slab_size": network.slab_size, "slab_axis": network.slab_axis,
            "tile": [int(patch[a]) for a in plane_axes(network.slab_axis)], "mirror_axes": mirror_axes}


def model_description(predictor: nnUNetPredictor, model: dict[str, Any]) -> dict[str, Any]:
    """``model``: the export's dataset, trainer, plans, configuration, folds and checkpoint names."""
    configuration = predictor.configuration_manager
    plans = predictor.plans_manager
    labels = predictor.label_manager
    channels = predictor.dataset_json["channel_names"]
    intensities = plans.foreground_intensity_properties_per_channel
    return {
        **model, "folds": [{"fold": fold, "file": f"fold_{fold}.onnx"} for fold in model["folds"]],
        "input_channels": len(channels), "channel_names": channels, "num_heads": labels.num_segmentation_heads,
        **slab_geometry(predictor), "step_size": 0.5, "gaussian_sigma_scale": GAUSSIAN_SIGMA_SCALE,
        "spacing": list(configuration.spacing),
        "transpose_forward": list(plans.transpose_forward), "transpose_backward": list(plans.transpose_backward),
        "normalization": [{"name": scheme, "use_mask_for_norm": bool(mask),
                           "intensity_properties": intensities.get(str(channel), {})}
                          for channel, (scheme, mask) in enumerate(zip(configuration.normalization_schemes,
                                                                       configuration.use_mask_for_norm))],
        "resampling": {"data": resampling_kwargs(configuration.configuration["resampling_fn_data_kwargs"]),
                       "probabilities": resampling_kwargs(
                           configuration.configuration["resampling_fn_probabilities_kwargs"])},
        "labels": predictor.dataset_json["labels"],
        "foreground_labels": [int(label) for label in labels.foreground_labels],
        "regions_class_order": list(labels.regions_class_order) if labels.has_regions else None,
        "file_ending": predictor.dataset_json["file_ending"], "image_dimension": 3,
    }
