"""The model or ensemble that ``nnUNetv2_find_best_configuration`` recommends, scored on the test set the way a
user would run it: its members' test-set predictions (each the ensemble of the benchmarked folds, with
probabilities), ``nnUNetv2_ensemble`` where it recommends two models, ``nnUNetv2_apply_postprocessing`` with the
postprocessing it chose, ``nnUNetv2_evaluate_folder`` against labelsTs."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nnunet_25d.benchmark.collect import Scoring, collect_test
from nnunet_25d.benchmark.statistics import CaseScore
from nnunet_25d.benchmark.testset import EnsemblePrediction
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner

RECOMMENDED_FOLDER = "recommended"  # in the report folder
RECOMMENDED_KEY = "find_best_configuration"  # its variant column in cases.csv


@dataclass(frozen=True)
class Recommended:
    members: tuple[EnsemblePrediction, ...]
    postprocessing_file: Path
    plans_file: Path
    folder: Path  # <report folder>/recommended

    @property
    def label(self) -> str:
        return " + ".join(m.variant.label for m in self.members)

    @property
    def final(self) -> Path:
        """The postprocessed segmentations that are scored."""
        return self.folder / "postprocessed"

    @property
    def ensembled(self) -> Path:
        return self.folder / "ensemble" if len(self.members) > 1 else self.members[0].folder

    def commands(self) -> list[tuple[str, list[str]]]:
        """(log name, command), in order."""
        members, first = self.members, self.members[0]
        steps = []
        if len(members) > 1:
            steps.append(("ensemble_recommended", ["nnUNetv2_ensemble", "-i", *(str(m.folder) for m in members),
                                                   "-o", str(self.ensembled), "-np", "1"]))
        steps.append(("postprocess_recommended", [
            "nnUNetv2_apply_postprocessing", "-i", str(self.ensembled), "-o", str(self.final), "-pp_pkl_file",
            str(self.postprocessing_file), "-np", "1", "-plans_json", str(self.plans_file), "-dataset_json",
            str(first.folder / "dataset.json")]))
        steps.append(("evaluate_recommended", [
            "nnUNetv2_evaluate_folder", str(first.test_set.labels), str(self.final), "-djfile",
            str(first.folder / "dataset.json"), "-pfile", str(self.plans_file), "-o", str(self.final / "summary.json"),
            "-np", "1"]))
        return steps


def recommended_of(information: dict | None, predictions: list[EnsemblePrediction], out_dir: Path
                   ) -> Recommended | None:
    """The recommendation as test-set predictions of this benchmark (seed 0's); None without one, or when a member
    has no test-set prediction here."""
    if not information:
        return None
    best = information["best_model_or_ensemble"]
    by_model = {(p.variant.trainer_name, p.variant.configuration): p for p in predictions}
    members = [by_model.get((m["trainer"], m["configuration"])) for m in best["selected_model_or_models"]]
    if not members or any(m is None for m in members):
        return None
    return Recommended(tuple(members), Path(best["postprocessing_file"]), Path(best["some_plans_file"]),
                       out_dir / RECOMMENDED_FOLDER)


def score_recommended(runner: NNUNetRunner, recommended: Recommended) -> str | None:
    """Ensemble, postprocess and evaluate; a line if it failed."""
    try:
        for name, command in recommended.commands():
            runner.run(command, name)
            if name == "postprocess_recommended":  # nnUNetv2_apply_postprocessing leaves no dataset.json there
                shutil.copy(recommended.members[0].folder / "dataset.json", recommended.final / "dataset.json")
    except CommandFailed as error:
        return f"the recommended {recommended.label} on the test set failed: {error.summary}"
    return None


def recommended_scores(recommended: Recommended | None, scoring: Scoring) -> list[CaseScore]:
    """Its test cases as scored (Dice from nnU-Net's evaluation, HD95 and NSD); none before they are."""
    if recommended is None or not (recommended.final / "summary.json").is_file():
        return []
    labels = recommended.members[0].test_set.labels
    return collect_test(RECOMMENDED_KEY, recommended.final, labels, scoring)
