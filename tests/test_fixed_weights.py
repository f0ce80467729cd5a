"""Fixed weights of the regression check (methods.core.checkpoints): compact copies that the usual loaders read,
the same values on every load (int8 x per-channel scale, close to the trained weights), with an LWL network's
pretrained backbone left out and rebuilt on loading."""

from __future__ import annotations

import pytest
import torch

from methods.__main__ import main as methods_main
from methods.core.backbones import build_backbone
from methods.core.checkpoints import fix_weights, read_payload
from methods.frtm.networks import build_head, load_head, save_head
from methods.lwl.networks import LWLNet, NetworkConfig, load_network, save_network

TINY_LWL = {"backbone": "efficientnet_lite0", "feature_channels": 16, "label_channels": 4,
            "decoder_widths": [16, 16, 16, 8]}
CHANNELS = {4: 24, 8: 40, 16: 112, 32: 320}


def assert_fixed_copy_of(original: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor], skip: str = "") -> None:
    """Small tensors exactly; large ones within half a quantisation step of their output channel, and not
    all of them exactly (they really are quantised)."""
    moved = 0
    for name, value in original.items():
        if skip and name.startswith(skip):
            continue
        got = loaded[name]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        if value.is_floating_point() and value.dim() >= 2 and value.numel() >= 1024:
            step = value.reshape(value.shape[0], -1).abs().amax(dim=1) / 127
            error = (got - value).reshape(value.shape[0], -1).abs().amax(dim=1)
            assert bool((error <= step / 2 + 1e-7).all()), name
            moved += not torch.equal(got, value)
        else:
            assert torch.equal(got, value), name
    assert moved > 0


def test_an_frtm_head_copy_loads_as_fixed_int8_weights_close_to_the_trained_ones(tmp_path):
    torch.manual_seed(0)
    head = build_head("refiner", CHANNELS)
    save_head(tmp_path / "head.pt", head, "refiner", "efficientnet_lite0")
    assert methods_main(["fix-weights", "--checkpoint", str(tmp_path / "head.pt"), "--out",
                         str(tmp_path / "fixed.pt")]) == 0
    fixed = load_head(tmp_path / "fixed.pt", "refiner", "efficientnet_lite0", CHANNELS)
    assert_fixed_copy_of(head.state_dict(), fixed.state_dict())
    assert (tmp_path / "fixed.pt").stat().st_size < 0.3 * (tmp_path / "head.pt").stat().st_size
    again = load_head(tmp_path / "fixed.pt", "refiner", "efficientnet_lite0", CHANNELS).state_dict()
    assert all(torch.equal(again[k], v) for k, v in fixed.state_dict().items())
    # a second copy of the same checkpoint is the same file, byte for byte (no time stamp in it)
    fix_weights(tmp_path / "head.pt", tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "fixed.pt").read_bytes()
    # an ordinary checkpoint reads as it was written
    plain = read_payload(tmp_path / "head.pt")["state_dict"]
    assert all(torch.equal(plain[k], v) for k, v in head.state_dict().items())


def test_an_lwl_copy_leaves_out_a_pretrained_backbone_and_rebuilds_it(tmp_path):
    torch.manual_seed(0)
    net = LWLNet(NetworkConfig(**TINY_LWL), backbone=build_backbone("efficientnet_lite0"))
    save_network(tmp_path / "net.pt", net)
    kept = fix_weights(tmp_path / "net.pt", tmp_path / "fixed.pt")
    assert kept["backbone"] == "pretrained (left out)"
    stored = read_payload(tmp_path / "fixed.pt")["state_dict"]
    assert not any(key.startswith("backbone.") for key in stored)
    loaded = load_network(tmp_path / "fixed.pt").state_dict()
    assert_fixed_copy_of(net.state_dict(), loaded, skip="backbone.")
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items() if k.startswith("backbone."))


def test_an_lwl_copy_keeps_a_backbone_that_training_changed(tmp_path):
    torch.manual_seed(0)
    net = LWLNet(NetworkConfig(**TINY_LWL), backbone=build_backbone("efficientnet_lite0"))
    with torch.no_grad():
        next(net.backbone.parameters()).add_(0.01)  # stage 2 fine-tunes the backbone
    save_network(tmp_path / "net.pt", net)
    assert fix_weights(tmp_path / "net.pt", tmp_path / "fixed.pt")["backbone"] == "in file"
    assert_fixed_copy_of(net.state_dict(), load_network(tmp_path / "fixed.pt").state_dict())


def test_a_file_that_is_no_weights_file_is_refused(tmp_path):
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not an FRTM head or LWL network file"):
        fix_weights(tmp_path / "other.pt", tmp_path / "fixed.pt")
    assert not (tmp_path / "fixed.pt").exists()
    assert methods_main(["fix-weights", "--checkpoint", str(tmp_path / "missing.pt"), "--out",
                         str(tmp_path / "fixed.pt")]) == 1  # one line on stderr, no traceback
