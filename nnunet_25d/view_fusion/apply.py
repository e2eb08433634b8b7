"""Test-time learned fusion of ``nnUNetv2_predict --save_probabilities`` outputs (one folder per model, in the
order of ``fusion.json``), written like ``nnUNetv2_ensemble`` writes its segmentations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_25d.errors import UserError
from nnunet_25d.view_fusion.weights import FusionWeights


def common_cases(folders: list[Path]) -> list[str]:
    cases = [{p.name[:-len(".npz")] for p in folder.glob("*.npz")} for folder in folders]
    if not cases[0]:
        raise UserError(f"no .npz in {folders[0]}: predict with `nnUNetv2_predict ... --save_probabilities`")
    missing = {str(folder): sorted(cases[0] ^ c) for folder, c in zip(folders, cases) if c != cases[0]}
    if missing:
        raise UserError(f"the prediction folders hold different cases: {missing}")
    return sorted(cases[0])


def apply_fusion(fusion_file: Path, folders: list[Path], out: Path, save_probabilities: bool = False) -> list[str]:
    """Fuse every case the folders share, write ``<case><file_ending>`` (and ``.npz`` if asked) to ``out``."""
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    weights = FusionWeights.from_json(fusion_file)
    if len(folders) != len(weights.models):
        raise UserError(f"{fusion_file} fuses {len(weights.models)} models ({', '.join(weights.models)}); got "
                        f"{len(folders)} prediction folders: give one per model, in that order")
    dataset_json = json.loads((folders[0] / "dataset.json").read_text())
    plans = PlansManager(str(folders[0] / "plans.json"))
    labels = plans.get_label_manager(dataset_json)
    writer = plans.image_reader_writer_class()
    out.mkdir(parents=True, exist_ok=True)
    cases = common_cases(folders)
    for case in tqdm(cases, desc="learned fusion", unit="case"):
        fused = weights.fuse([np.load(folder / f"{case}.npz")["probabilities"] for folder in folders])
        properties = load_pickle(str(folders[0] / f"{case}.pkl"))
        segmentation = labels.convert_probabilities_to_segmentation(fused)
        writer.write_seg(np.asarray(segmentation), str(out / f"{case}{dataset_json['file_ending']}"), properties)
        if save_probabilities:
            np.savez_compressed(out / f"{case}.npz", probabilities=fused)
    for name in ("dataset.json", "plans.json"):
        (out / name).write_text((folders[0] / name).read_text())
    return cases
