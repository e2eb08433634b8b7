"""nnUNetTrainer25DAxial / Coronal / Sagittal: slab input along one axis of the 3D data (multi-view 2.5D)."""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.augmentation import blur_in_plane_only, in_plane_augmentation, in_view_layout
from nnunet_25d.configuration import TrainingSetup, derive_view_plans
from nnunet_25d.training.slab_context import with_context_cropped
from nnunet_25d.training.slab_trainer import nnUNetTrainer25D
from nnunet_25d.views import from_view, plane_axes, slab_axis_of, to_view

# nnU-Net treats spacings more than 3x apart as anisotropic
ANISOTROPY_THRESHOLD = 3.0


class nnUNetTrainer25DView(nnUNetTrainer25D):
    """Slab input along ``view``'s axis of a 3D configuration (``3d_fullres``), predicted in the data's layout.

    The network moves the slab axis to the front and back (:class:`SlabNetwork` with ``slab_axis``), so
    ``nnUNetv2_predict``, ``nnUNetv2_ensemble`` and ``find_best_configuration`` see an ordinary 3D model whose
    outputs are in the volume's orientation. Training runs nnUNetTrainer25D's augmentation in the view's layout:
    patches are permuted into it after loading and back before deep-supervision downsampling.
    """

    view: str = "axial"
    default_configuration = "3d_fullres"

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup = TrainingSetup()) -> dict:
        return derive_view_plans(plans, configuration, cls.view, cls.slab_size, setup)

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
    view = "axial"


class nnUNetTrainer25DCoronal(nnUNetTrainer25DView):
    view = "coronal"


class nnUNetTrainer25DSagittal(nnUNetTrainer25DView):
    view = "sagittal"
