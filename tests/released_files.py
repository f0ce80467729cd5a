"""The seven released weights files, built in the authors' formats from the official fixtures (the real files are
unreachable here): what the released-weights checks and the released preset's CPU run read.

- FRTM rn18_*.pth: frtm-vos `Trainer.save_checkpoint`'s dict (name, epoch, stats as defaultdict(AverageMeter),
  model, optimizer, scheduler); `model` is frtm_refiner.pt's `weights` (the released ResNet-18 refiner layout).
  rn101_*.pth: the keys and shapes of frtm_refiner_keys_rn101.json, the rn18 values where the shapes agree and
  seeded He-normal values for the four TSE.*.reduce.0.weight that read the wider ResNet-101 features.
- LWL lwl_stage2.pth / lwl_boxinit.pth: pytracking `save_checkpoint`'s dict with a pickled NetConstructor;
  `net` is lwl_network.pt's `weights` (lwl_boxinit.pt's box encoder added for box-init) with a seeded random
  Mask R-CNN ResNet-50 under feature_extractor.* (the fixtures keep its features, not its weights).
Weights are float32, as the authors saved them (the fixtures store them rounded to float16), so the files have
the released sizes (FRTM ~5 MB of weights, LWL ~150 MB).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import torch

from tests.official_fixtures import load_official, official_dir
from tests.test_released_checkpoints import LWL_CONSTRUCTOR_KWDS, _fake_class, _forget

FRTM_FILES = {"rn18_ytvos.pth": "resnet18", "rn18_all.pth": "resnet18", "rn101_ytvos.pth": "resnet101",
              "rn101_all.pth": "resnet101", "rn101_dv.pth": "resnet101"}
LWL_FILES = {"lwl_stage2.pth": False, "lwl_boxinit.pth": True}  # file -> box-init
ALL_FILES = [*FRTM_FILES, *LWL_FILES]


def _float32(state: dict) -> dict:
    return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}


def frtm_model(backbone: str) -> dict:
    """The `model` state dict of a released FRTM file for `backbone` (module docstring)."""
    rn18 = _float32(load_official("frtm_refiner.pt")["weights"])
    if backbone == "resnet18":
        return rn18
    listing = json.loads((official_dir() / "frtm_refiner_keys_rn101.json").read_text())["keys"]
    generator = torch.Generator().manual_seed(101)
    model = {}
    for key, (shape, dtype) in listing.items():
        if key in rn18 and list(rn18[key].shape) == shape:
            model[key] = rn18[key]
        else:  # He-normal, as the fixtures' refiner convs
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            model[key] = torch.randn(shape, generator=generator, dtype=getattr(torch, dtype)) * (2 / fan_in) ** 0.5
    return model


def lwl_net(box_init: bool) -> dict:
    """The `net` state dict of a released LWL file (module docstring), backbone keys first as released."""
    from methods.core.backbones import MaskRCNNResNet50Backbone

    torch.manual_seed(50)
    backbone = MaskRCNNResNet50Backbone(pretrained=False).state_dict()
    net = {f"feature_extractor.{key}": value for key, value in backbone.items()}
    net.update(load_official("lwl_network.pt")["weights"])
    if box_init:
        net.update(load_official("lwl_boxinit.pt")["weights"])
    return _float32(net)


def write_frtm_file(path: Path, backbone: str, zip_format: bool = True) -> Path:
    meter, modules = _fake_class("lib.utils", "AverageMeter",
                                 {"__init__": lambda self: self.__dict__.update(val=0.0, avg=0.0, count=0)})
    try:
        stats = collections.defaultdict(meter)
        stats["stats/loss"].avg = 0.25
        torch.save(dict(name=path.stem, epoch=249, stats=stats, model=frtm_model(backbone),
                        optimizer={"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
                        scheduler={"step_size": 127, "gamma": 0.1}), path,
                   _use_new_zipfile_serialization=zip_format)
    finally:
        _forget(modules)
    return path


def write_lwl_file(path: Path, box_init: bool, zip_format: bool = True) -> Path:
    def init(self, fun_name, fun_module, args, kwds):
        self.fun_name, self.fun_module, self.args, self.kwds = fun_name, fun_module, args, kwds

    constructor_cls, modules = _fake_class("ltr.admin.model_constructor", "NetConstructor", {"__init__": init})
    try:
        module = "ltr.models.lwl.lwl_box_net" if box_init else "ltr.models.lwl.lwl_net"
        constructor = constructor_cls("steepest_descent_resnet50", module, (), dict(LWL_CONSTRUCTOR_KWDS))
        torch.save(dict(epoch=50 if box_init else 80, actor_type="LWLActor",
                        net_type="LWTLBoxNet" if box_init else "LWTLNet", net=lwl_net(box_init), net_info=None,
                        constructor=constructor, optimizer={"state": {}, "param_groups": []}, stats={}), path,
                   _use_new_zipfile_serialization=zip_format)
    finally:
        _forget(modules)
    return path


def write_released_file(folder: Path, name: str, zip_format: bool = True) -> Path:
    """One of ALL_FILES, in `folder` (zip_format False: torch's legacy format, as torch < 1.6 saved)."""
    folder.mkdir(parents=True, exist_ok=True)
    if name in FRTM_FILES:
        return write_frtm_file(folder / name, FRTM_FILES[name], zip_format)
    return write_lwl_file(folder / name, LWL_FILES[name], zip_format)


def write_released_folder(folder: Path, names: list[str] = ALL_FILES) -> Path:
    """The released files `names` in `folder`, as a reviewer downloads them."""
    for name in names:
        write_released_file(folder, name)
    return folder
