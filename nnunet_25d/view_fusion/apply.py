"""Test-time learned fusion of ``nnUNetv2_predict --save_probabilities`` outputs (one folder per model, in the
order of ``fusion.json``), written like ``nnUNetv2_ensemble`` writes its segmentations.

Nothing here unpickles: the geometry each fused segmentation is written with (spacing, origin, direction or affine)
is read from the segmentation the prediction wrote beside its ``.npz``; the ``.pkl`` beside them (which can run code
when unpickled) is read only with ``trust_pickles`` and only where that segmentation is missing. Each output is
written under a temporary name and renamed when complete."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_25d.errors import UserError
from nnunet_25d.files import atomic_path, write_text_atomically
from nnunet_25d.view_fusion.weights import FusionWeights


def common_cases(folders: list[Path]) -> list[str]:
    cases = [{p.name[:-len(".npz")] for p in folder.glob("*.npz")} for folder in folders]
    if not cases[0]:
        raise UserError(f"no .npz in {folders[0]}: predict with `nnUNetv2_predict ... --save_probabilities`")
    missing = {str(folder): sorted(cases[0] ^ c) for folder, c in zip(folders, cases) if c != cases[0]}
    if missing:
        raise UserError(f"the prediction folders hold different cases: {missing}")
    return sorted(cases[0])


def read_probabilities(path: Path) -> np.ndarray:
    """The ``probabilities`` array of an ``.npz`` (no pickled objects); one line naming the file if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["probabilities"]
    except KeyError:
        raise UserError(f"{path} holds no 'probabilities' array: predict with `nnUNetv2_predict ... "
                        f"--save_probabilities`") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{path} cannot be read as probabilities ({' '.join(str(error).split())[:120]}): it is "
                        f"truncated, corrupted or holds pickled objects; predict that folder again") from None


def geometry(case: str, folder: Path, file_ending: str, writer, trust_pickles: bool = False) -> dict:
    """nnU-Net's properties of ``case`` as its writer needs them: from the segmentation the prediction wrote beside
    the ``.npz`` (read with the same reader/writer); from ``<case>.pkl`` only with ``trust_pickles``."""
    segmentation = folder / f"{case}{file_ending}"
    if segmentation.is_file():
        _, properties = writer.read_seg(str(segmentation))
        return properties
    pickled = folder / f"{case}.pkl"
    if trust_pickles and pickled.is_file():
        from batchgenerators.utilities.file_and_folder_operations import load_pickle

        return load_pickle(str(pickled))
    if pickled.is_file():
        raise UserError(f"{case}: no {segmentation.name} in {folder} to take the image geometry from, and "
                        f"{pickled.name} is not unpickled (a pickle can run code): pass --trust-pickles if you trust "
                        f"that folder, or predict it again with `nnUNetv2_predict ... --save_probabilities`")
    raise UserError(f"{case}: no {segmentation.name} in {folder} to take the image geometry from: predict it again "
                    f"with `nnUNetv2_predict ... --save_probabilities` (it writes both)")


def apply_fusion(fusion_file: Path, folders: list[Path], out: Path, save_probabilities: bool = False,
                 trust_pickles: bool = False) -> list[str]:
    """Fuse every case the folders share, write ``<case><file_ending>`` (and ``.npz`` if asked) to ``out``."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    weights = FusionWeights.from_json(fusion_file)
    if len(folders) != len(weights.models):
        raise UserError(f"{fusion_file} fuses {len(weights.models)} models ({', '.join(weights.models)}); got "
                        f"{len(folders)} prediction folders: give one per model, in that order")
    dataset_json = json.loads((folders[0] / "dataset.json").read_text())
    plans = PlansManager(str(folders[0] / "plans.json"))
    labels = plans.get_label_manager(dataset_json)
    writer = plans.image_reader_writer_class()
    ending = dataset_json["file_ending"]
    cases = common_cases(folders)
    out.mkdir(parents=True, exist_ok=True)
    for case in tqdm(cases, desc="learned fusion", unit="case"):
        fused = weights.fuse([read_probabilities(folder / f"{case}.npz") for folder in folders])
        properties = geometry(case, folders[0], ending, writer, trust_pickles)
        segmentation = np.asarray(labels.convert_probabilities_to_segmentation(fused))
        with atomic_path(out / f"{case}{ending}") as partial:
            writer.write_seg(segmentation, str(partial), properties)
        if save_probabilities:
            with atomic_path(out / f"{case}.npz") as partial:
                with open(partial, "wb") as file:  # np.savez_compressed would add .npz to a name without it
                    np.savez_compressed(file, probabilities=fused)
    for name in ("dataset.json", "plans.json"):
        write_text_atomically(out / name, (folders[0] / name).read_text())
    return cases
