"""The anatomy dataset: real brain anatomy from the MNI152 2009 template that nilearn's wheel ships (T1 and its grey-
and white-matter maps, 1 mm isotropic), turned into anisotropic training cases — a random rigid and elastic
deformation, a smooth bias field, noise, and thick slices (each slice the mean over its thickness, as a scanner's).

nilearn is an optional extra (``pip install "nnunet_25d[anatomy]"``): only its data files are read, nothing is
downloaded. Labels: 1 grey matter, 2 white matter (the template's maps above 0.5 where they are the larger one).
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_25d.errors import UserError

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
LABELS = {"background": 0, "grey_matter": 1, "white_matter": 2}


def template_folder() -> Path:
    """nilearn's ``datasets/data`` folder, which holds the MNI152 2009 files."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise UserError('the anatomy dataset reads the MNI152 template that nilearn ships: pip install '
                        '"nnunet_25d[anatomy]" (or pip install nilearn)')
    folder = Path(spec.origin).parent / "datasets" / "data"
    missing = [name for name in TEMPLATE_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise UserError(f"nilearn at {folder.parent.parent} lacks {', '.join(missing)}: install nilearn >= 0.10")
    return folder


@dataclass(frozen=True)
class AnatomySpec:
    """How the cases are drawn: in-plane pixel size, slice thickness per case (cyclically), deformation sizes."""

    in_plane_mm: float = 2.0
    slice_thickness_mm: tuple[float, ...] = (4.0,)
    rotation_degrees: float = 10.0
    translation_mm: float = 5.0
    elastic_mm: float = 4.0  # largest displacement of the elastic field
    elastic_grid_mm: float = 40.0  # spacing of its control points
    bias: float = 0.2  # the bias field varies within 1 +- bias
    noise: float = 0.03  # Gaussian noise, fraction of the template's intensity range

    def thickness(self, case: int) -> float:
        return self.slice_thickness_mm[case % len(self.slice_thickness_mm)]


def read_template() -> tuple[sitk.Image, sitk.Image]:
    """(T1 float32, labels uint8) on the template's 1 mm grid."""
    folder = template_folder()
    t1 = sitk.Cast(sitk.ReadImage(str(folder / TEMPLATE_FILES["t1"])), sitk.sitkFloat32)
    gm, wm = (sitk.GetArrayFromImage(sitk.ReadImage(str(folder / TEMPLATE_FILES[k]))) for k in ("gm", "wm"))
    labels = np.zeros(gm.shape, np.uint8)
    labels[(gm > 0.5) & (gm >= wm)] = 1
    labels[(wm > 0.5) & (wm > gm)] = 2
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(t1)
    return t1, label_image


def random_transform(reference: sitk.Image, spec: AnatomySpec, rng: np.random.Generator) -> sitk.Transform:
    """Rigid (rotation about the volume's centre, translation) then elastic (a B-spline field whose control points
    move by at most ``elastic_mm``)."""
    centre = reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()])
    rigid = sitk.Euler3DTransform(centre, *np.deg2rad(rng.uniform(-spec.rotation_degrees, spec.rotation_degrees, 3)),
                                  tuple(rng.uniform(-spec.translation_mm, spec.translation_mm, 3)))
    if spec.elastic_mm == 0:
        return rigid
    mesh = [max(1, int(n * s / spec.elastic_grid_mm)) for n, s in zip(reference.GetSize(), reference.GetSpacing())]
    elastic = sitk.BSplineTransformInitializer(reference, mesh, order=3)
    parameters = rng.uniform(-spec.elastic_mm, spec.elastic_mm, len(elastic.GetParameters()))
    elastic.SetParameters(parameters.tolist())
    return sitk.CompositeTransform([rigid, elastic])


def thick_slice_grid(reference: sitk.Image, in_plane_mm: float, thickness_mm: float) -> sitk.Image:
    """An empty image over the template's field of view (its orientation) with ``in_plane_mm`` pixels and
    ``thickness_mm`` slices along its third axis (axial slices)."""
    size, spacing = np.array(reference.GetSize()), np.array(reference.GetSpacing())
    new_spacing = np.array([in_plane_mm, in_plane_mm, thickness_mm])
    new_size = np.maximum(1, np.floor(size * spacing / new_spacing)).astype(int)
    first_centre = -0.5 + new_spacing / spacing / 2  # in the template's continuous voxel index
    grid = sitk.Image([int(n) for n in new_size], sitk.sitkFloat32)
    grid.SetSpacing(new_spacing.tolist())
    grid.SetDirection(reference.GetDirection())
    grid.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint(first_centre.tolist()))
    return grid


def slice_profile(thickness_mm: float, spacing_mm: float) -> np.ndarray:
    """Weights over neighbouring voxels along z of a slice ``thickness_mm`` thick centred on a voxel: each voxel's
    overlap with [-t/2, t/2] (in voxels), normalised — [0.125, 0.25, 0.25, 0.25, 0.125] for 4 mm at 1 mm."""
    half = thickness_mm / spacing_mm / 2
    radius = int(np.ceil(half - 0.5 - 1e-9))
    offsets = np.arange(-radius, radius + 1)
    overlap = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0, None)
    return overlap / overlap.sum()


def thick_slices(image: sitk.Image, thickness_mm: float) -> sitk.Image:
    """Each voxel the mean over a ``thickness_mm`` slab along z (the partial-volume average of a thick slice)."""
    from scipy.ndimage import convolve1d

    weights = slice_profile(thickness_mm, image.GetSpacing()[2])
    averaged = convolve1d(sitk.GetArrayFromImage(image), weights, axis=0, mode="constant")
    result = sitk.GetImageFromArray(averaged.astype(np.float32))
    result.CopyInformation(image)
    return result


def bias_field(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field within 1 +- ``amplitude``: a random quadratic in normalised coordinates."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    terms = [*axes, *(a * b for i, a in enumerate(axes) for b in axes[i:])]
    field = sum(rng.uniform(-1, 1) * t for t in terms)
    field = field / max(np.abs(field).max(), 1e-6)
    return 1 + amplitude * field


def make_anatomy_case(t1: sitk.Image, labels: sitk.Image, spec: AnatomySpec, thickness: float,
                      rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image]:
    """One case: the template averaged over thick slices, deformed straight onto the case's grid (one resampling),
    bias field and noise applied; the labels deformed alike (nearest neighbour at the slice centres)."""
    transform = random_transform(t1, spec, rng)
    grid = thick_slice_grid(t1, spec.in_plane_mm, thickness)
    image = sitk.Resample(thick_slices(t1, thickness), grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    label_image = sitk.Resample(labels, sitk.Cast(grid, sitk.sitkUInt8), transform, sitk.sitkNearestNeighbor, 0,
                                sitk.sitkUInt8)
    array = sitk.GetArrayFromImage(image)
    if spec.bias:
        array = array * bias_field(array.shape, spec.bias, rng)
    if spec.noise:
        array = array + rng.normal(0, spec.noise * float(sitk.GetArrayViewFromImage(t1).max()), array.shape)
    noisy = sitk.GetImageFromArray(array.astype(np.float32))
    noisy.CopyInformation(image)
    return noisy, label_image


def write_anatomy_dataset(raw_root: str | Path, dataset_id: int, name: str = "Anatomy25D", n_train: int = 10,
                          n_test: int = 4, spec: AnatomySpec = AnatomySpec(), seed: int = 0) -> Path:
    """Write ``DatasetXXX_name`` in nnU-Net raw format (imagesTr/labelsTr, with ``n_test`` > 0 imagesTs/labelsTs)
    and return its folder."""
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    t1, labels = read_template()
    for sub in ("imagesTr", "labelsTr") + (("imagesTs", "labelsTs") if n_test > 0 else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in tqdm(range(n_train + n_test), desc="anatomy cases", unit="case"):
        split = "Tr" if index < n_train else "Ts"
        image, label = make_anatomy_case(t1, labels, spec, spec.thickness(index), rng)
        sitk.WriteImage(image, str(folder / f"images{split}" / f"case_{index:03d}_0000.nii.gz"), useCompression=True)
        sitk.WriteImage(label, str(folder / f"labels{split}" / f"case_{index:03d}.nii.gz"), useCompression=True)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": n_train, "file_ending": ".nii.gz",
        "name": name, "description": "MNI152 2009 T1 (nilearn), deformed, bias field, noise, thick slices: "
                                     f"{', '.join(f'{t:g}' for t in spec.slice_thickness_mm)} mm"}, indent=2))
    return folder
