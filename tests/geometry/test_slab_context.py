"""The training side of exact slab context, without nnU-Net's loader: the lazy zero-padded view of a case and the
foreground locations that move with it."""
import numpy as np
import pytest

from nnunet_25d.geometry.slab_context import SEGMENTATION_PADDING, SlabContextDataset, ZeroPaddedAxis


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("start, stop", [(0, 2), (0, 9), (1, 4), (3, 7), (6, 9), (8, 9), (0, 1), (2, 3)])
def test_zero_padded_view_reads_like_np_pad(axis, start, stop):
    array = np.arange(1, 1 + 2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7)
    view = ZeroPaddedAxis(array, axis, 2, fill=-1)
    padding = [(0, 0)] * 4
    padding[axis + 1] = (2, 2)
    expected = np.pad(array, padding, constant_values=-1)
    assert view.shape == expected.shape
    index = [slice(None)] * 4
    index[axis + 1] = slice(start, min(stop, expected.shape[axis + 1]))
    index[(axis + 1) % 3 + 1] = slice(1, 3)  # other axes are cut as asked
    assert np.array_equal(view[tuple(index)], expected[tuple(index)])


class FreshReads:
    """Reads like blosc2: every slice a new array."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype

    def __getitem__(self, index):
        self.last = np.array(self.array[index])
        return self.last


def test_a_read_inside_the_case_is_the_source_s_fresh_array_or_a_copy_never_a_view_of_the_case():
    array = np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7)
    fresh = FreshReads(array)
    inside = (slice(None), slice(2, 5))
    read = ZeroPaddedAxis(fresh, 0, 2)[inside]
    assert read is fresh.last, "no second copy of a fresh read"
    from_numpy = ZeroPaddedAxis(array, 0, 2)[inside]
    from_numpy += 1  # nnU-Net's augmentation works in place
    assert np.array_equal(array, np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7))
    assert np.array_equal(ZeroPaddedAxis(fresh, 0, 2)[(slice(None), slice(1, 4))][:, 1:], array[:, :2])


class OneCase:
    identifiers = ["case"]

    def load_case(self, identifier):
        data = np.ones((1, 4, 3, 3), np.float32)
        seg = np.zeros((1, 4, 3, 3), np.int16)
        seg[0, 3, 1, 2] = 1
        return data, seg, None, {"class_locations": {1: np.array([[0, 3, 1, 2]]), 2: np.zeros((0, 4), int)}}


@pytest.mark.parametrize("axis, moved", [(0, [0, 5, 1, 2]), (2, [0, 3, 1, 4])])
def test_dataset_pads_each_case_and_moves_its_foreground_locations(axis, moved):
    data, seg, _, properties = SlabContextDataset(OneCase(), 2, axis).load_case("case")
    assert data.shape[axis + 1] == (4, 3, 3)[axis] + 4 and seg.shape == data.shape
    full = seg[(slice(None),) * 4]
    assert full[tuple(moved)] == 1, "the moved location still points at the foreground voxel"
    assert (np.moveaxis(full, axis + 1, 1)[:, :2] == SEGMENTATION_PADDING).all()
    assert properties["class_locations"][1].tolist() == [moved] and len(properties["class_locations"][2]) == 0
    assert OneCase().load_case("case")[3]["class_locations"][1].tolist() == [[0, 3, 1, 2]], "source untouched"
