"""Segmentation figures on constructed volumes: two (or more) fake models that differ on known slices. The chosen
cases, slice, row and class are the ones worked out by hand in the comments; the view across the slices has the
physical aspect ratio of the spacing; every model's contour is on the rendered pixels where its outline lies;
region-based and ignore-label datasets render; the demo's report reads top-down with its figures."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from nnunet_25d.report.segmentation_figures import (REFERENCE_COLOUR, CaseFigure, reading_line, segmentation_figure,
                                                    segmentation_section)
from nnunet_25d.report.segmentations import (ClassView, ModelSegmentations, Pick, SplitFiles, choose_row,
                                             choose_slice, largest_and_median, pick_cases, read_case, slice_counts,
                                             window)

NAN = float("nan")
SPACING = (4.0, 1.0, 1.0)  # z, y, x in mm: the slice axis is z
SHAPE = (10, 24, 24)
DATASET_JSON = {"labels": {"background": 0, "organ": 1}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}


def write_image(array: np.ndarray, path: Path, spacing: tuple[float, float, float] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(spacing)))  # SimpleITK: x, y, z
    sitk.WriteImage(image, str(path))
    return path


def constructed_case() -> dict[str, np.ndarray]:
    """The organ: a box on slices 2-6 (rows and columns 8-15, 64 voxels a slice) and a 2 x 2 tip on slice 7.
    "2d" keeps a 4 x 4 core (rows and columns 10-13) of slice 3, misses the tip on slice 7, paints 3 voxels on
    slice 9. "2.5D" is right but for slice 3: column 8 left out, a protrusion on row 12, columns 16-21."""
    reference = np.zeros(SHAPE, np.uint8)
    reference[2:7, 8:16, 8:16] = 1
    reference[7, 8:10, 8:10] = 1
    two_d = reference.copy()
    two_d[3] = 0
    two_d[3, 10:14, 10:14] = 1
    two_d[7] = 0
    two_d[9, 0:3, 0] = 1
    slab = reference.copy()
    slab[3, 8:16, 8] = 0
    slab[3, 12, 16:22] = 1
    image = np.random.default_rng(0).normal(0, 0.3, SHAPE).astype(np.float32) + (reference > 0)
    return {"reference": reference, "2d": two_d, "2.5D": slab, "image": image}


@pytest.fixture
def dataset(tmp_path: Path) -> dict:
    """Case c1 on disk (reference, image, both models' predictions) with hand-chosen per-case Dice."""
    arrays = constructed_case()
    references = {"c1": write_image(arrays["reference"], tmp_path / "labelsTs" / "c1.nii.gz")}
    images = {"c1": write_image(arrays["image"], tmp_path / "imagesTs" / "c1_0000.nii.gz")}
    models = [ModelSegmentations(label, baseline, {"organ": {"c1": dice}},
                                 {"c1": write_image(arrays[label], tmp_path / label / "c1.nii.gz")})
              for label, baseline, dice in (("2d", True, 0.90), ("2.5D", False, 0.97))]
    return {"models": models, "split": SplitFiles("test", "test set", references, images), "arrays": arrays,
            "out": tmp_path / "report"}


def model(label: str, baseline: bool, dice: dict[str, dict[str, float]]) -> ModelSegmentations:
    return ModelSegmentations(label, baseline, dice, {})


def test_the_cases_are_the_largest_and_the_median_paired_difference_of_the_best_variant():
    models = [
        model("2d", True, {"organ": {"c1": 0.50, "c2": 0.80, "c3": 0.90, "c4": 0.70},
                           "lesion": {"c1": NAN, "c2": 0.0, "c3": 0.50}}),
        model("3d", True, {"organ": {"c1": 0.85, "c2": 0.85, "c3": 0.60, "c4": 0.85},
                           "lesion": {"c1": NAN, "c2": NAN, "c3": 0.50}}),
        model("2.5D", False, {"organ": {"c1": 0.90, "c2": 0.85, "c3": 0.88, "c4": 0.81},
                              "lesion": {"c1": NAN, "c2": NAN, "c3": 0.70}}),
        model("MorphMLP", False, {"organ": {c: 0.60 for c in ("c1", "c2", "c3", "c4")},
                                  "lesion": {"c1": NAN, "c2": NAN, "c3": 0.20}}),
    ]
    # organ: 2.5D is the best variant (mean 0.860 vs 0.600). Against 2d: +0.40, +0.05, -0.02, +0.11 -> largest
    # c1; sorted -0.02, +0.05, +0.11, +0.40 -> the lower middle one, c2. Against 3d: +0.05, 0, +0.28, -0.04 ->
    # largest c3; median c2, drawn already.
    # lesion: c1 both empty everywhere (left out); on c2 2d painted the class where 2.5D correctly left it out:
    # 1 - 0 = +1 -> largest c2; c3 +0.20 -> the median of (+0.20, +1). Against 3d only c3 is paired: drawn already.
    picks = pick_cases(models, ["organ", "lesion"], "key")
    assert [(p.class_name, p.case, p.baseline, p.reason) for p in picks] == [
        ("organ", "c1", "2d", "largest"), ("organ", "c2", "2d", "median"), ("organ", "c3", "3d", "largest"),
        ("lesion", "c2", "2d", "largest"), ("lesion", "c3", "2d", "median")]
    assert {p.variant for p in picks} == {"2.5D"}
    assert [p.difference for p in picks] == pytest.approx([0.40, 0.05, 0.28, 1.0, 0.20])
    assert pick_cases(models, ["organ", "lesion"], "none") == []
    with pytest.raises(ValueError, match="'some'"):
        pick_cases(models, ["organ"], "some")


def test_all_adds_every_other_variants_cases_and_draws_a_case_once():
    models = [model("2d", True, {"organ": {"a": 0.5, "b": 0.5, "c": 0.5}}),
              model("2.5D", False, {"organ": {"a": 0.9, "b": 0.6, "c": 0.5}}),
              model("MorphMLP", False, {"organ": {"a": 0.5, "b": 0.5, "c": 0.1}})]
    # 2.5D: +0.4, +0.1, 0 -> largest a, median b; MorphMLP: 0, 0, -0.4 -> largest c, median b (drawn already)
    assert [(p.case, p.variant) for p in pick_cases(models, ["organ"], "key")] == [("a", "2.5D"), ("b", "2.5D")]
    assert [(p.case, p.variant, p.reason) for p in pick_cases(models, ["organ"], "all")] == [
        ("a", "2.5D", "largest"), ("b", "2.5D", "median"), ("c", "MorphMLP", "largest")]
    assert largest_and_median({"x": 0.3}) == [("x", "largest")]
    assert largest_and_median({}) == []


def test_the_slice_and_row_are_where_the_two_models_disagree_most(dataset):
    volumes = read_case("c1", dataset["split"], dataset["models"], DATASET_JSON)
    view = ClassView.of(volumes, 1, None)
    # voxels where 2d and 2.5D differ, per slice: slice 3: 2.5D's 56 + 6 against 2d's 16 inside them = 46;
    # slice 7: the 4-voxel tip; slice 9: 2d's 3 painted voxels; elsewhere 0
    assert list(np.sum(view.predictions["2d"] ^ view.predictions["2.5D"], axis=(1, 2))) == \
        [0, 0, 0, 46, 0, 0, 0, 4, 0, 3]
    assert choose_slice(view, "2.5D", "2d") == 3
    # on slice 3, per row: rows 8, 9, 14, 15: 7 (2.5D only); rows 10, 11, 13: 7 - 4 = 3; row 12: 7 + 6 - 4 = 9
    assert choose_row(view, "2.5D", "2d", 3) == 12
    # per-slice Dice of 2d on slice 3: 2 x 16 / (64 + 16); slices 0, 1 and 8 empty in both
    dice = view.slice_dice("2d")
    assert dice[3] == pytest.approx(0.4) and dice[7] == 0.0 and dice[9] == 0.0
    assert all(math.isnan(dice[i]) for i in (0, 1, 8))
    # the tip missed on slice 7, 3 voxels painted on slice 9
    assert slice_counts(view.reference, view.predictions["2d"]).__dict__ == {"holding": 6, "missed": 1,
                                                                               "painted": 1}
    assert slice_counts(view.reference, view.predictions["2.5D"]).__dict__ == {"holding": 6, "missed": 0,
                                                                                 "painted": 0}


def test_where_the_models_agree_the_slice_with_most_errors_is_shown():
    reference = np.zeros((4, 6, 6), bool)
    reference[1:3, 2:4, 2:4] = True
    same = reference.copy()
    same[2, 0, :] = True  # both models paint row 0 of slice 2
    view = ClassView(reference, {"a": same, "b": same.copy()}, np.ones_like(reference))
    assert choose_slice(view, "a", "b") == 2 and choose_row(view, "a", "b", 2) == 0
    exact = ClassView(reference, {"a": reference.copy(), "b": reference.copy()}, np.ones_like(reference))
    assert choose_slice(exact, "a", "b") == 1 and choose_row(exact, "a", "b", 1) == 2  # most reference voxels


def test_the_slice_axis_is_the_one_of_largest_spacing(tmp_path):
    arrays = constructed_case()
    # the same volume stored with its thick axis last: arrays (y, x, z) and spacing (1, 1, 4)
    def last(a: np.ndarray) -> np.ndarray:
        return np.moveaxis(a, 0, 2).copy()

    references = {"c1": write_image(last(arrays["reference"]), tmp_path / "ref" / "c1.nii.gz", (1.0, 1.0, 4.0))}
    models = [ModelSegmentations(label, baseline, {}, {"c1": write_image(last(arrays[label]), tmp_path / label /
                                                                         "c1.nii.gz", (1.0, 1.0, 4.0))})
              for label, baseline in (("2d", True), ("2.5D", False))]
    volumes = read_case("c1", SplitFiles("test", "test set", references), models, DATASET_JSON)
    assert volumes.axis == 2 and volumes.spacing == (4.0, 1.0, 1.0)
    assert np.array_equal(volumes.reference, arrays["reference"])
    assert volumes.image is None and volumes.problems == ["no image file"]
    assert choose_slice(ClassView.of(volumes, 1, None), "2.5D", "2d") == 3


def rendered(dataset) -> tuple:
    volumes = read_case("c1", dataset["split"], dataset["models"], DATASET_JSON)
    view = ClassView.of(volumes, 1, None)
    shown = CaseFigure(Pick("organ", "c1", "2.5D", "2d", 0.07, "largest"), 3, 12, 10,
                       {m: view.case_dice(m) for m in view.predictions},
                       {m: slice_counts(view.reference, view.predictions[m]) for m in view.predictions}, "x.png")
    fig = segmentation_figure(volumes, view, shown, "label 1", "test set", {"2d": "C0", "2.5D": "C1"})
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    axes = {ax.get_title().split(" ")[0]: ax for ax in fig.axes if ax.get_title()}
    return fig, np.asarray(canvas.buffer_rgba()), axes["slice"], axes["across"], axes["where"], shown


def colour_near(pixels: np.ndarray, ax, x_mm: float, y_mm: float, colour: str, radius: int = 3) -> bool:
    """Whether a pixel within ``radius`` of the data point (mm) has ``colour`` (to within anti-aliasing)."""
    x, y = ax.transData.transform((x_mm, y_mm))
    row, column = int(round(pixels.shape[0] - y)), int(round(x))
    patch = pixels[row - radius:row + radius + 1, column - radius:column + radius + 1, :3].astype(int)
    target = np.array(to_rgba(colour)[:3]) * 255
    return bool(np.any(np.all(np.abs(patch - target) <= 40, axis=-1)))


def test_every_models_contour_is_drawn_where_its_outline_lies(dataset):
    _, pixels, in_plane, across, _, _ = rendered(dataset)
    # slice 3 (mm = voxel edges, 1 mm in-plane): 2d's 4 x 4 core has its left edge at x = 10 (rows 10-13);
    # 2.5D's protrusion on row 12 ends at x = 22; the reference's left edge is x = 8 (2.5D starts at 9)
    assert colour_near(pixels, in_plane, 10.0, 12.0, "C0")
    assert colour_near(pixels, in_plane, 22.0, 12.5, "C1")
    assert colour_near(pixels, in_plane, 8.0, 12.0, REFERENCE_COLOUR)
    assert not colour_near(pixels, in_plane, 22.0, 12.5, "C0") and not colour_near(pixels, in_plane, 10.0, 12.0, "C1")
    assert not colour_near(pixels, in_plane, 4.0, 4.0, "C0") and not colour_near(pixels, in_plane, 4.0, 4.0, "C1")
    # across the slices at row 12: the protrusion is on slice 3 only (4 mm slices: y from 12 to 16 mm)
    assert colour_near(pixels, across, 22.0, 14.0, "C1")
    assert not colour_near(pixels, across, 22.0, 6.0, "C1")


def test_the_view_across_the_slices_has_the_physical_aspect_ratio(dataset):
    _, _, in_plane, across, curve, _ = rendered(dataset)
    box = across.get_window_extent()
    # 10 slices x 4 mm high, 24 columns x 1 mm wide
    assert box.height / box.width == pytest.approx(40 / 24, rel=0.02)
    square = in_plane.get_window_extent()
    assert square.height / square.width == pytest.approx(1.0, rel=0.02)
    assert across.get_ylim() == (0.0, 40.0) and across.get_xlim() == (0.0, 24.0)
    assert [t.get_text() for t in across.get_yticklabels()] == ["0", "2", "4", "6", "8"]


def test_the_figure_names_case_slice_class_and_each_models_dice_and_draws_the_dice_per_slice(dataset):
    fig, _, _, _, curve, shown = rendered(dataset)
    title = fig.get_suptitle()
    # 2d's Dice on the case: 2 x (4 x 64 + 16) / (324 + (4 x 64 + 16 + 3)) = 544 / 599
    assert shown.dice["2d"] == pytest.approx(544 / 599)
    assert "c1 · organ (label 1) · slice 3 of 10 · test set" in title
    assert f"2d {544 / 599:.3f}" in title and f"2.5D {shown.dice['2.5D']:.3f}" in title
    lines = [line for line in curve.lines if len(line.get_xdata()) == 10]
    assert [line.get_color() for line in lines] == ["C0", "C1"]
    assert lines[0].get_ydata()[3] == pytest.approx(0.4)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == ["reference", f"2d (Dice {544 / 599:.3f})", f"2.5D (Dice {shown.dice['2.5D']:.3f})"]


def test_the_report_section_draws_the_hand_picked_case_with_its_reading(dataset):
    section, methods = segmentation_section(dataset["models"], dataset["split"], DATASET_JSON, dataset["out"])
    assert section.startswith("### What the models segment")
    assert "![c1, organ: slice 3 and the view across the slices](segmentation_organ_c1.png)" in section
    assert ("**c1, organ** (largest difference, 2.5D − 2d: +0.070 Dice): 2d misses organ on 1 of the 6 slices "
            "that hold it and paints it on 1 slice without it; 2.5D on 0 and 0.") in section
    assert (dataset["out"] / "segmentation_organ_c1.png").stat().st_size > 10_000
    assert "largest absolute and the median paired Dice difference" in methods
    none, _ = segmentation_section(dataset["models"], dataset["split"], DATASET_JSON, dataset["out"], "none")
    assert none == "" and not list(dataset["out"].glob("segmentation_*.png")), "none: old figures removed too"


def test_a_model_without_a_file_is_named_and_the_others_drawn(dataset):
    models = dataset["models"] + [ModelSegmentations("3d", True, {"organ": {"c1": 0.95}}, {})]
    section, _ = segmentation_section(models, dataset["split"], DATASET_JSON, dataset["out"])
    assert "3d: no predicted file for c1" not in section  # said in the figure's title, not the report
    assert "2d misses organ on 1 of the 6" in section and (dataset["out"] / "segmentation_organ_c1.png").is_file()
    no_reference = SplitFiles("test", "test set", {}, {})
    text, _ = segmentation_section(dataset["models"], no_reference, DATASET_JSON, dataset["out"])
    assert "- c1, organ: no reference label image found; its figure is left out." in text


def test_the_window_is_the_foregrounds_percentiles_widened():
    image = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    foreground = np.zeros(image.shape, bool)
    foreground[5] = True  # values 500-599
    low, high = np.percentile(np.arange(500, 600), [0.5, 99.5])
    assert window(image, foreground) == pytest.approx((low - 0.25 * (high - low), high + 0.25 * (high - low)))
    everything = np.percentile(np.arange(1000), [0.5, 99.5])
    width = everything[1] - everything[0]
    assert window(image, np.zeros(image.shape, bool)) == pytest.approx((everything[0] - width / 4,
                                                                       everything[1] + width / 4))


def test_a_region_based_dataset_renders_its_regions(tmp_path):
    dataset_json = {"labels": {"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order": [1, 2],
                    "file_ending": ".nii.gz"}
    arrays = constructed_case()
    reference = arrays["reference"].copy()
    reference[3:5, 10:13, 10:13] = 2  # the core inside the whole
    two_d = reference.copy()
    two_d[4] = np.where(two_d[4] == 2, 1, two_d[4])  # 2d misses the core on slice 4
    references = {"c1": write_image(reference, tmp_path / "labelsTs" / "c1.nii.gz")}
    models = [ModelSegmentations(label, baseline, {"whole": {"c1": 0.99}, "core": {"c1": dice}},
                                 {"c1": write_image(array, tmp_path / label / "c1.nii.gz")})
              for label, baseline, array, dice in (("2d", True, two_d, 0.5), ("2.5D", False, reference, 1.0))]
    section, _ = segmentation_section(models, SplitFiles("test", "test set", references, {}), dataset_json,
                                      tmp_path / "out")
    assert "(segmentation_whole_c1.png)" in section and "(segmentation_core_c1.png)" in section
    assert "2d misses core on 1 of the 2 slices that hold it" in section
    volumes = read_case("c1", SplitFiles("test", "", references), models, dataset_json)
    whole = ClassView.of(volumes, (1, 2), None)
    assert whole.reference.sum() == np.sum(reference > 0)  # the region is the union of its labels
    assert choose_slice(ClassView.of(volumes, 2, None), "2.5D", "2d") == 4


def test_an_ignore_label_counts_for_no_one(tmp_path):
    dataset_json = {"labels": {"background": 0, "organ": 1, "ignore": 2}, "file_ending": ".nii.gz"}
    arrays = constructed_case()
    reference = arrays["reference"].copy()
    reference[:, 0:4, :] = 2  # rows 0-3 of every slice are not annotated
    painter = arrays["reference"].copy()
    painter[4, 0:4, 0:10] = 1  # paints inside the ignored rows only
    references = {"c1": write_image(reference, tmp_path / "labelsTs" / "c1.nii.gz")}
    images = {"c1": write_image(arrays["image"], tmp_path / "imagesTs" / "c1_0000.nii.gz")}
    models = [ModelSegmentations(label, baseline, {"organ": {"c1": dice}},
                                 {"c1": write_image(array, tmp_path / label / "c1.nii.gz")})
              for label, baseline, array, dice in (("2d", True, arrays["2d"], 0.9),
                                                    ("painter", False, painter, 1.0))]
    split = SplitFiles("test", "test set", references, images)
    section, _ = segmentation_section(models, split, dataset_json, tmp_path / "out")
    assert "(segmentation_organ_c1.png)" in section and "segmentation_ignore" not in section
    volumes = read_case("c1", split, models, dataset_json)
    view = ClassView.of(volumes, 1, 2)
    assert view.slice_dice("painter")[4] == 1.0 and view.case_dice("painter") == 1.0
    assert "painter on 0 and 0" in section


def test_the_reading_of_a_class_absent_from_the_reference():
    shown = CaseFigure(Pick("lesion", "c2", "2.5D", "2d", 1.0, "largest"), 0, 0, 5, {},
                       {"2d": slice_counts(np.zeros((5, 2, 2), bool), np.ones((5, 2, 2), bool)),
                        "2.5D": slice_counts(np.zeros((5, 2, 2), bool), np.zeros((5, 2, 2), bool))}, "x.png")
    assert reading_line(shown, ["2d", "2.5D"]) == (
        "**c2, lesion** (largest difference, 2.5D − 2d: +1.000 Dice): lesion is not in c2's reference; 2d paints it "
        "on 5 slices, 2.5D on 0.")


def test_the_demo_report_reads_top_down_with_its_figures(tmp_path):
    from nnunet_25d.benchmark.comparison import ModelResult, write_report
    from nnunet_25d.report.machine import Machine
    from nnunet_25d.report.setting import ReportSetting, classes_of_dataset

    arrays = constructed_case()
    raw = tmp_path / "nnUNet_raw" / "Dataset042_Organ"
    (raw / "dataset.json").parent.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps(DATASET_JSON))
    write_image(arrays["reference"], raw / "labelsTs" / "c1.nii.gz")
    write_image(arrays["image"], raw / "imagesTs" / "c1_0000.nii.gz")
    results = []
    for label, trainer, key, dice in (("nnU-Net 2d", "nnUNetTrainer_10epochs_50iters", "2d", 544 / 599),
                                      ("2.5D", "nnUNetTrainer25D_10epochs_50iters", "2.5D", 0.97)):
        folder = tmp_path / "predictions" / f"{trainer}__2d"
        write_image(arrays[key], folder / "c1.nii.gz")
        (folder / "summary.json").write_text(json.dumps({"metric_per_case": [
            {"reference_file": str(raw / "labelsTs" / "c1.nii.gz"), "metrics": {"1": {"Dice": dice}}}]}))
        results.append(ModelResult(label, trainer, "2d", {"organ": dice}, {"organ": dice}, {"organ": 1},
                                   {"organ": 1}, 10.0, 2.0, 1000, model_folder=str(tmp_path / trainer),
                                   raw_dataset=str(raw)))
    setting = ReportSetting("Dataset042_Organ", "10 epochs x 50 iterations", (0,), classes_of_dataset(DATASET_JSON),
                            (Machine("Test CPU", 2, None, "9.9", "2.8.1"),), "", "test-set prediction",
                            "nnU-Net 2d vs 2.5D")
    markdown = write_report(results, {}, tmp_path / "report", setting)
    lines = markdown.splitlines()
    assert lines[0] == "## Dataset042_Organ: nnU-Net 2d vs 2.5D" and lines[1] == ""
    assert lines[2].startswith("2.5D has the best Dice for every class on the test set (fold-0 model)")
    headings = [line for line in lines if line.startswith("### ")]
    assert headings == ["### Dice per class, test set (fold-0 model)", "### What the models segment",
                        "### Dice per class, validation fold 0", "### Cost", "### Methods"]
    assert lines.index(headings[0]) == 4, "the verdict is one line between the title and the key table"
    order = [markdown.index(part) for part in ("### Dice per class, test set", "![report](report.png)",
                                               "### What the models segment", "(segmentation_organ_c1.png)",
                                               "**c1, organ** (largest difference", "### Methods", "**Data.**",
                                               "**Machine.**", "Segmentation figures: per class")]
    assert order == sorted(order)
    assert "nnU-Net 2d misses organ on 1 of the 6 slices that hold it" in markdown
    assert (tmp_path / "report" / "segmentation_organ_c1.png").stat().st_size > 10_000
    assert "segmentation_" not in write_report(results, {}, tmp_path / "report", setting, figures="none")
    assert not list((tmp_path / "report").glob("segmentation_*.png"))


def test_the_demo_reads_each_class_and_region_of_nnunets_summary(tmp_path):
    from nnunet_25d.benchmark.comparison import case_dice_from_summary

    dataset_json = {"labels": {"background": 0, "whole": [1, 2], "core": [2], "ignore": 3},
                    "regions_class_order": [1, 2]}
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"metric_per_case": [  # nnU-Net's keys: str() of the label or region tuple
        {"reference_file": "/raw/labelsTs/c1.nii.gz", "metrics": {"(1, 2)": {"Dice": 0.9}, "(2,)": {"Dice": NAN}}},
        {"reference_file": "/raw/labelsTs/c2.nii.gz", "metrics": {"(1, 2)": {"Dice": 0.5}, "(2,)": {"Dice": 0.0}}}]}))
    dice = case_dice_from_summary(summary, dataset_json)
    assert dice["whole"] == {"c1": 0.9, "c2": 0.5} and dice["core"]["c2"] == 0.0 and math.isnan(dice["core"]["c1"])


def test_an_unreadable_image_leaves_the_outlines_on_a_blank_background(dataset, tmp_path):
    empty = tmp_path / "empty_0000.nii.gz"
    empty.write_bytes(b"")
    split = SplitFiles("test", "test set", dataset["split"].references, {"c1": empty})
    volumes = read_case("c1", split, dataset["models"], DATASET_JSON)
    assert volumes.image is None and volumes.problems == ["image not read (RuntimeError)"]
    section, _ = segmentation_section(dataset["models"], split, DATASET_JSON, dataset["out"])
    assert "2d misses organ on 1 of the 6" in section and (dataset["out"] / "segmentation_organ_c1.png").is_file()
