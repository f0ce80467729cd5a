"""Reading the authors' released checkpoints (methods.core.released) as data, without running their code.

The files are unreachable here, so each test writes one in the released nesting (README of the official
fixtures, "Checkpoint nesting") from the fixtures' weights: FRTM's `model` is exactly frtm_refiner.pt's
`weights`; LWL's `net` is lwl_network.pt's `weights` plus a Mask R-CNN ResNet-50 under feature_extractor.*.
The pickled objects beside the weights (pytracking's NetConstructor, FRTM's AverageMeter statistics) are
real objects of classes defined here in fake modules, removed from sys.modules before reading: reading must
not need them. Hostile pickles must be refused without running anything.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from methods.core.backbones import MaskRCNNResNet50Backbone
from methods.core.released import PickledObject, read_released_checkpoint
from tests.official_fixtures import load_official, official_dir

LWL_CONSTRUCTOR_KWDS = {"filter_size": 3, "num_filters": 16, "optim_iter": 5, "backbone_pretrained": True,
                        "out_feature_dim": 512, "frozen_backbone_layers": ["conv1", "bn1", "layer1"],
                        "label_encoder_dims": (16, 32, 64), "use_bn_in_label_enc": False, "clf_feat_blocks": 0,
                        "final_conv": True, "backbone_type": "mrcnn"}


def _fake_class(module_name: str, class_name: str, namespace: dict) -> tuple[type, list[str]]:
    """A class that pickles as `module_name.class_name`, with its modules in sys.modules (and their names)."""
    parts = module_name.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    cls = type(class_name, (), dict(namespace))
    cls.__module__, cls.__qualname__ = module_name, class_name
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    setattr(sys.modules[module_name], class_name, cls)
    return cls, names


def _forget(names: list[str]) -> None:
    for name in names:
        sys.modules.pop(name, None)


def _save(payload: dict, path: Path, zip_format: bool) -> Path:
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    return path


def _frtm_file(path: Path, weights: dict, zip_format: bool = True) -> Path:
    """lib/training.py Trainer.save_checkpoint: stats is defaultdict(lib.utils.AverageMeter)."""
    meter, modules = _fake_class("lib.utils", "AverageMeter",
                                 {"__init__": lambda self: self.__dict__.update(val=0.0, avg=0.0, count=0)})
    try:
        stats = collections.defaultdict(meter)
        stats["stats/loss"].avg = 0.25
        optimizer = {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
        return _save(dict(name="rn18_ytvos", epoch=249, stats=stats, model=weights, optimizer=optimizer,
                          scheduler={"step_size": 127, "gamma": 0.1}), path, zip_format)
    finally:
        _forget(modules)


def _lwl_file(path: Path, net: dict, marker: Path, net_type: str = "LWTLNet", zip_format: bool = True,
              fun_module: str = "ltr.models.lwl.lwl_net") -> Path:
    """ltr/trainers/base_trainer.py save_checkpoint. The NetConstructor's get() would leave `marker` behind."""

    def get(self):
        marker.write_text("the constructor ran")

    def init(self, fun_name, fun_module, args, kwds):
        self.fun_name, self.fun_module, self.args, self.kwds = fun_name, fun_module, args, kwds

    constructor_cls, modules = _fake_class("ltr.admin.model_constructor", "NetConstructor",
                                           {"__init__": init, "get": get})
    stats_cls, more = _fake_class("ltr.admin.stats", "AverageMeter", {})
    try:
        constructor = constructor_cls("steepest_descent_resnet50", fun_module, (), dict(LWL_CONSTRUCTOR_KWDS))
        return _save(dict(epoch=80, actor_type="LWLActor", net_type=net_type, net=net, net_info=None,
                          constructor=constructor, optimizer={"state": {}, "param_groups": []},
                          stats={"train": {"Loss/total": stats_cls()}}), path, zip_format)
    finally:
        _forget(modules + more)


def _lwl_net(box: bool = False) -> dict:
    backbone = MaskRCNNResNet50Backbone(pretrained=False).state_dict()
    net = {f"feature_extractor.{key}": value for key, value in backbone.items()}
    net.update(load_official("lwl_network.pt")["weights"])
    if box:
        net.update(load_official("lwl_boxinit.pt")["weights"])
    return net


def _assert_same_state(read: dict, written: dict) -> None:
    assert list(read) == list(written)
    assert all(torch.equal(read[key], written[key]) for key in written)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_frtm_resnet18_checkpoint_reads_as_data(tmp_path, zip_format):
    weights = load_official("frtm_refiner.pt")["weights"]
    path = _frtm_file(tmp_path / "rn18_ytvos.pth", weights, zip_format)
    assert "lib" not in sys.modules
    released = read_released_checkpoint(path)
    assert released.kind == "frtm" and released.backbone == "resnet18"
    assert released.info["name"] == "rn18_ytvos" and released.info["epoch"] == 249
    assert "lib.utils.AverageMeter" in released.info["stand_ins"]
    _assert_same_state(released.state_dict, weights)
    assert "lib" not in sys.modules  # nothing was imported


def test_frtm_resnet101_is_told_by_the_tse_width(tmp_path):
    folder = official_dir()
    listing = folder / "frtm_refiner_keys_rn101.json" if folder is not None else None
    if listing is None or not listing.is_file():
        load_official("frtm_refiner_keys_rn101.json")  # skips, saying why
    keys = json.loads(listing.read_text())
    keys = keys.get("keys", keys)
    weights = {key: torch.zeros(shape, dtype=getattr(torch, dtype)) for key, (shape, dtype) in keys.items()}
    released = read_released_checkpoint(_frtm_file(tmp_path / "rn101_all.pth", weights))
    assert released.kind == "frtm" and released.backbone == "resnet101"


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_lwl_checkpoint_reads_without_the_constructor_code(tmp_path, zip_format):
    marker = tmp_path / "constructor-ran"
    net = _lwl_net()
    path = _lwl_file(tmp_path / "lwl_stage2.pth", net, marker, zip_format=zip_format)
    assert "ltr" not in sys.modules
    released = read_released_checkpoint(path)
    assert released.kind == "lwl" and released.backbone == "resnet50_mrcnn"
    assert released.info["net_type"] == "LWTLNet" and released.info["box_init"] is False
    constructor = released.info["constructor"]
    assert constructor["pickled_class"] == "ltr.admin.model_constructor.NetConstructor"
    assert constructor["fun_module"] == "ltr.models.lwl.lwl_net"
    assert constructor["fun_name"] == "steepest_descent_resnet50"
    assert constructor["kwds"]["out_feature_dim"] == 512 and constructor["args"] == []
    _assert_same_state(released.state_dict, net)
    assert not marker.exists() and "ltr" not in sys.modules  # nothing ran, nothing was imported
    # the released backbone keys load into our Mask R-CNN ResNet-50 as they are
    backbone = MaskRCNNResNet50Backbone(weights_path=path)
    assert torch.equal(backbone.layer3[0].conv1.weight, net["feature_extractor.layer3.0.conv1.weight"])


def test_lwl_box_init_checkpoint(tmp_path):
    net = _lwl_net(box=True)
    path = _lwl_file(tmp_path / "lwl_boxinit.pth", net, tmp_path / "ran", net_type="LWTLBoxNet",
                     fun_module="ltr.models.lwl.lwl_box_net")
    released = read_released_checkpoint(path)
    assert released.kind == "lwl" and released.info["box_init"] is True
    assert released.info["net_type"] == "LWTLBoxNet"
    assert released.info["constructor"]["fun_module"] == "ltr.models.lwl.lwl_box_net"
    _assert_same_state(released.state_dict, net)


# ---- refusals: these need no fixtures ----

def _hostile(tmp_path: Path, reduce_to, where: str) -> Path:
    payload = {"net": {"decoder.conv.weight": torch.zeros(2)}, "epoch": 1}
    hostile = type("Hostile", (), {"__reduce__": lambda self: reduce_to})
    if where == "weights":
        payload["net"]["decoder.conv.bias"] = hostile()
    else:
        payload["stats"] = hostile()
    path = tmp_path / "hostile.pth"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("where", ["weights", "beside the weights"])
@pytest.mark.parametrize("call", ["os.system", "open", "exec"])
def test_hostile_pickle_is_refused_and_does_not_run(tmp_path, call, where):
    marker = tmp_path / "it-ran"
    reduce_to = {"os.system": (os.system, (f"touch {marker}",)),
                 "open": (open, (str(marker), "w")),
                 "exec": (exec, (f"open({str(marker)!r}, 'w').close()",))}[call]
    path = _hostile(tmp_path, reduce_to, where)
    with pytest.raises(ValueError, match="refused") as error:
        read_released_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


def test_an_official_looking_class_where_a_tensor_belongs_is_refused(tmp_path):
    cls, modules = _fake_class("ltr.admin.evil", "Payload", {})
    try:
        torch.save({"net": {"decoder.conv.weight": cls()}}, tmp_path / "odd.pth")
    finally:
        _forget(modules)
    with pytest.raises(ValueError, match="where a tensor is expected"):
        read_released_checkpoint(tmp_path / "odd.pth")


def test_stand_ins_keep_data_and_do_nothing():
    stand_in = type("PickledObject[x.Y]", (PickledObject,), {"pickled_class": "x.Y"})
    obj = stand_in("a", 1)
    obj.__setstate__({"fun_name": "f", "kwds": {"k": (1, 2)}})
    assert obj.as_data() == {"pickled_class": "x.Y", "args": ["a", 1], "fun_name": "f", "kwds": {"k": [1, 2]}}


@pytest.mark.parametrize("content", ["list", "garbage", "foreign dict"])
def test_files_that_are_not_released_checkpoints_are_refused(tmp_path, content):
    path = tmp_path / "x.pth"
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        torch.save([1, 2] if content == "list" else {"state_dict": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError) as error:
        read_released_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_missing_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="released_weights"):
        read_released_checkpoint(tmp_path / "rn18_ytvos.pth")
