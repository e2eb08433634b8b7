"""The engine choice and the graph cache's bookkeeping, without a model: which backend runs where, what a cached
graph is keyed by, when a record is trusted, and where graphs go when the model folder cannot be written."""
from __future__ import annotations

import json
import os

import pytest

from nnunet_25d.errors import UserError
from nnunet_25d.predict import engine
from nnunet_25d.predict.engine import (GraphCache, cache_key, cached_description, chosen_backend, graph_files,
                                       plain_3d_network)


def test_auto_is_onnxruntime_on_cpu_and_torch_on_gpus():
    assert chosen_backend("auto", "cpu") == "onnxruntime"
    assert chosen_backend("auto", "cuda") == "torch" and chosen_backend("auto", "mps") == "torch"
    assert chosen_backend("torch", "cpu") == "torch" and chosen_backend("onnxruntime", "cpu") == "onnxruntime"


def test_onnxruntime_on_a_gpu_is_refused_with_what_to_use():
    with pytest.raises(UserError, match="--backend torch"):
        chosen_backend("onnxruntime", "cuda")


def test_without_onnxruntime_auto_says_so_and_falls_back(monkeypatch, capsys):
    monkeypatch.setattr(engine, "onnxruntime_available", lambda: False)
    assert chosen_backend("auto", "cpu") == "torch"
    assert "pip install onnxruntime" in capsys.readouterr().out
    with pytest.raises(UserError, match="pip install onnxruntime"):
        chosen_backend("onnxruntime", "cpu")


def model_folder(tmp_path):
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights")
    (tmp_path / "plans.json").write_text("{}")
    (tmp_path / "dataset.json").write_text("{}")
    return tmp_path


def test_the_key_changes_with_the_checkpoint_plans_and_dataset(tmp_path):
    folder = model_folder(tmp_path)
    first = cache_key(folder, 0, "checkpoint_final.pth")
    assert cache_key(folder, 0, "checkpoint_final.pth") == first
    for name, content in (("fold_0/checkpoint_final.pth", b"retrained"), ("plans.json", b"{ }"),
                          ("dataset.json", b"{ }")):
        before = cache_key(folder, 0, "checkpoint_final.pth")
        path = folder / name
        path.write_bytes(content)
        os.utime(path, ns=(path.stat().st_mtime_ns + 10 ** 9,) * 2)
        assert cache_key(folder, 0, "checkpoint_final.pth") != before, name


def test_graph_files_sit_beside_the_checkpoint(tmp_path):
    assert graph_files(tmp_path, "checkpoint_best.pth") == (tmp_path / "checkpoint_best.onnx",
                                                            tmp_path / "checkpoint_best.onnx.json")


def write_entry(folder, key, graph=True):
    graph_path, sidecar = graph_files(folder, "checkpoint_final.pth")
    if graph:
        graph_path.write_bytes(b"graph")
    sidecar.write_text(json.dumps({"key": key, "description": {"slab_size": 3}}))


def test_a_record_is_trusted_only_with_its_graph_and_the_same_key(tmp_path):
    key = {"checkpoint_sha256": "a"}
    assert cached_description(tmp_path, "checkpoint_final.pth", key) is None
    write_entry(tmp_path, key)
    assert cached_description(tmp_path, "checkpoint_final.pth", key) == {"slab_size": 3}
    assert cached_description(tmp_path, "checkpoint_final.pth", {"checkpoint_sha256": "b"}) is None
    (tmp_path / "checkpoint_final.onnx").unlink()
    assert cached_description(tmp_path, "checkpoint_final.pth", key) is None


def test_an_unreadable_record_is_one_line_unless_quiet(tmp_path, capsys):
    (tmp_path / "checkpoint_final.onnx").write_bytes(b"graph")
    (tmp_path / "checkpoint_final.onnx.json").write_text("{not json")
    assert cached_description(tmp_path, "checkpoint_final.pth", {}, quiet=True) is None
    assert capsys.readouterr().out == ""
    assert cached_description(tmp_path, "checkpoint_final.pth", {}) is None
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "unreadable" in said[0] and "exporting it again" in said[0]


def test_graphs_go_beside_the_checkpoint_or_for_the_run_only(tmp_path, monkeypatch, capsys):
    folder = model_folder(tmp_path)
    cache = GraphCache(folder, "checkpoint_final.pth")
    assert cache.folder(0) == cache.folder(0, writing=True) == folder / "fold_0"
    monkeypatch.setattr(GraphCache, "_writable", staticmethod(lambda path: False))
    assert cache.folder(0) == folder / "fold_0", "reading never makes a run folder"
    elsewhere = cache.folder(0, writing=True)
    assert elsewhere != folder / "fold_0" and elsewhere.is_dir() and cache.folder(0, writing=True) == elsewhere
    write_entry(elsewhere, {"checkpoint_sha256": "a"})
    assert cache.folder(0) == elsewhere, "this run's export is read back"
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "cannot be written" in said[0]


def test_a_read_only_model_folder_serves_the_graphs_exported_into_it(tmp_path, monkeypatch, capsys):
    folder = model_folder(tmp_path)
    write_entry(folder / "fold_0", cache_key(folder, 0, "checkpoint_final.pth"))
    monkeypatch.setattr(GraphCache, "_writable", staticmethod(lambda path: False))
    monkeypatch.setattr(engine.tempfile, "TemporaryDirectory", None)  # a run folder would fail loudly
    assert engine.graphs_cached(folder, [0], "checkpoint_final.pth")
    assert GraphCache(folder, "checkpoint_final.pth").folder(0) == folder / "fold_0"
    assert capsys.readouterr().out == ""


def plans_with(name: str, conv_op: str) -> dict:
    return {"configurations": {"c": {"architecture": {"network_class_name": name, "arch_kwargs": {"conv_op": conv_op}}}}}


def test_nnunets_own_3d_networks_go_to_torch_without_loading_them():
    unet = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    assert plain_3d_network(plans_with(unet, "torch.nn.modules.conv.Conv3d"), "c")
    assert not plain_3d_network(plans_with(unet, "torch.nn.modules.conv.Conv2d"), "c")
    assert not plain_3d_network(plans_with("nnunet_25d.architectures.slab_network.SlabNetwork",
                                           "torch.nn.modules.conv.Conv3d"), "c")
    assert not plain_3d_network({"configurations": {"c": {"inherits_from": "b"}}}, "c")


def test_plans_that_do_not_say_are_not_taken_for_a_3d_network():
    assert not plain_3d_network({}, "c")
    assert not plain_3d_network(plans_with("", "torch.nn.modules.conv.Conv3d"), "c")
    no_convolution = {"configurations": {"c": {"architecture": {"network_class_name": "x.PlainConvUNet"}}}}
    assert not plain_3d_network(no_convolution, "c")


def test_a_checkpoint_rewritten_in_place_is_hashed_again(tmp_path):
    """Same size, new time: hashed again; same time, new size: hashed again (the digest memo's key)."""
    path = tmp_path / "checkpoint_final.pth"
    path.write_bytes(b"aaaa")
    stamp = path.stat().st_mtime_ns
    first = engine.file_digest(path)
    path.write_bytes(b"bbbb")
    os.utime(path, ns=(stamp + 10 ** 9,) * 2)
    second = engine.file_digest(path)
    path.write_bytes(b"ccccc")
    os.utime(path, ns=(stamp + 10 ** 9,) * 2)
    assert len({first, second, engine.file_digest(path)}) == 3


def test_a_fold_folder_that_is_not_there_gets_its_graph_in_a_run_folder(tmp_path, capsys):
    folder = model_folder(tmp_path)
    cache = GraphCache(folder, "checkpoint_final.pth")  # the run folder lives as long as the cache
    elsewhere = cache.folder(3, writing=True)
    assert folder not in elsewhere.parents and elsewhere.name == "fold_3" and elsewhere.is_dir()
    assert "cannot be written" in capsys.readouterr().out


def test_looking_for_cached_graphs_says_nothing_even_about_a_damaged_record(tmp_path, capsys):
    folder = model_folder(tmp_path)
    (folder / "fold_0" / "checkpoint_final.onnx").write_bytes(b"graph")
    (folder / "fold_0" / "checkpoint_final.onnx.json").write_text("{not json")
    assert not engine.graphs_cached(folder, [0], "checkpoint_final.pth")
    assert capsys.readouterr().out == ""
