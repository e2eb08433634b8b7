"""nnUNetTrainer25DAxial / Coronal / Sagittal: slab input along one axis of the 3D data (multi-view 2.5D)."""
from __future__ import annotations

import math

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.trainers.augmentation import blur_in_plane_only, in_plane_augmentation, in_view_layout
from nnunet_25d.planning.configuration import (
    DEFAULT_2D_NETWORK,
    SLAB_NETWORK,
    ConfigurationError,
    TrainingSetup,
    dataset_id,
    resolved_source,
    slab_patches,
    slices_per_step,
    store_derived,
    two_d_op,
)
from nnunet_25d.planning.inference_depth import inference_depth
from nnunet_25d.geometry.slab import check_slab_size, slab_batch
from nnunet_25d.geometry.slab_context import with_context_cropped
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D
from nnunet_25d.geometry.views import from_view, plane_axes, slab_axis_of, to_view

# nnU-Net treats spacings more than 3x apart as anisotropic
ANISOTROPY_THRESHOLD = 3.0


def _view_slices_per_step(plans: dict, source: dict, plane_pixels: int) -> int:
    """Slices per step whose pixels add up to a step of nnU-Net's 2d (or of the 3D plan, without a 2d plan)."""
    reference = plans["configurations"].get("2d", source)
    budget = reference.get("batch_size", 2) * math.prod(reference.get("patch_size", [plane_pixels]))
    return max(1, round(budget / plane_pixels))


def derive_view_plans(plans: dict, configuration: str, view: str, slab_size: int,
                      setup: TrainingSetup = TrainingSetup()) -> dict:
    """Plans whose ``configuration`` (a 3D one, e.g. ``3d_fullres``) trains a slab model along ``view``'s axis.

    The patch keeps the 3D plan's extent along the two plane axes; along the slab axis it is thin in training
    (:func:`~nnunet_25d.geometry.slab.slab_batch` of a 2d step's pixels) and deep at inference
    (:func:`~nnunet_25d.planning.inference_depth.inference_depth`). The 2D network takes the 3D plan's kernel sizes and
    strides of the plane axes: where the plane holds the coarse slice axis (coronal, sagittal of an anisotropic
    scan) these are nnU-Net's own anisotropic choices (1x3 kernels, no pooling of the slice axis until the spacings
    are comparable). Data, spacing and normalisation are the 3D plan's, so every view sees the same voxels.
    """
    check_slab_size(slab_size)
    axis = slab_axis_of(view)
    marker = {"slab_size": slab_size, "network": SLAB_NETWORK, "view": view}
    derived, source = resolved_source(plans, configuration, marker)
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
    slab_patches(source, batch, axis, inference_depth(median_depth, setup.volume_depth))
    architecture = source["architecture"]
    kwargs = dict(architecture["arch_kwargs"])

    def slab_axis_one(per_stage: list) -> list:
        return [[1 if a == axis else n for a, n in enumerate(entry)] for entry in per_stage]

    kwargs.update(
        kernel_sizes=slab_axis_one(kwargs["kernel_sizes"]),
        strides=slab_axis_one(kwargs["strides"]),
        conv_op=two_d_op(kwargs["conv_op"]),
        norm_op=two_d_op(kwargs.get("norm_op")),
        dropout_op=two_d_op(kwargs.get("dropout_op")),
    )
    source["architecture"] = {
        "network_class_name": SLAB_NETWORK,
        "arch_kwargs": {"slab_size": slab_size, "slab_axis": axis, "slices_per_forward": slices_per_step(source),
                        "network_2d": architecture.get("network_class_name", DEFAULT_2D_NETWORK), **kwargs},
        "_kw_requires_import": list(architecture.get("_kw_requires_import", [])),
    }
    plane_spacing = [source["spacing"][a] for a in plane_axes(axis)]
    return store_derived(derived, configuration, source, {**marker, "plane_spacing": plane_spacing})


class nnUNetTrainer25DView(nnUNetTrainer25D):
    """Slab input along ``view``'s axis of a 3D configuration (``3d_fullres``), predicted in the data's layout.

    The network moves the slab axis to the front and back (:class:`SlabNetwork` with ``slab_axis``), so
    ``nnUNetv2_predict``, ``nnUNetv2_ensemble`` and ``find_best_configuration`` see an ordinary 3D model whose
    outputs are in the volume's orientation. Training runs nnUNetTrainer25D's augmentation in the view's layout:
    patches are permuted into it after loading and back before deep-supervision downsampling.
    """

    view: str = "axial"
    default_configuration = "3d_fullres"
    supervised_per_patch = None  # a view's batch splits a 2d step's pixels (derive_view_plans), not its slices

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None = None) -> dict:
        return derive_view_plans(plans, configuration, cls.view, cls.slab_size, setup or TrainingSetup())

    @property
    def slab_axis(self) -> int:
        return slab_axis_of(self.view)

    def get_training_transforms(self, patch_size, *args, **kwargs):
        axis = self.slab_axis
        view_patch = [patch_size[a] for a in to_view(axis)]
        pipeline = blur_in_plane_only(nnUNetTrainer.get_training_transforms(view_patch, *args, **kwargs))
        return with_context_cropped(in_view_layout(pipeline, to_view(axis), from_view(axis)), self.context_width, axis)

    def plane_is_anisotropic(self) -> bool:
        spacing = [self.configuration_manager.spacing[a] for a in plane_axes(self.slab_axis)]
        return max(spacing) / min(spacing) > ANISOTROPY_THRESHOLD

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        axis = self.slab_axis
        patch = self.configuration_manager.patch_size
        rotate = not self.plane_is_anisotropic()
        rotation, dummy_2d, initial_view, mirror_view = in_plane_augmentation([patch[a] for a in to_view(axis)],
                                                                              rotate=rotate)
        initial = [initial_view[position] for position in from_view(axis)]
        self.inference_allowed_mirroring_axes = tuple(to_view(axis)[m] for m in mirror_view)
        self.print_to_log_file(
            f"2.5D {self.view}: slab of {self.slab_size} slices along axis {axis}, patch {patch}, "
            f"{'in-plane rotation' if rotate else 'no rotation (anisotropic plane)'}, "
            f"test-time mirroring of axes {self.inference_allowed_mirroring_axes}")
        return rotation, dummy_2d, initial, mirror_view


class nnUNetTrainer25DAxial(nnUNetTrainer25DView):
    """Slab input along axial slices (the slice axis of the data) of a 3D configuration (one view of multi-view 2.5D)."""

    view = "axial"


class nnUNetTrainer25DCoronal(nnUNetTrainer25DView):
    """Slab input along coronal slices of a 3D configuration (one view of multi-view 2.5D)."""

    view = "coronal"


class nnUNetTrainer25DSagittal(nnUNetTrainer25DView):
    """Slab input along sagittal slices of a 3D configuration (one view of multi-view 2.5D)."""

    view = "sagittal"
