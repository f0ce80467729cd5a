"""Reading trained-weight files (FRTM heads, LWL networks), and writing the compact fixed copies that the
regression check's `-fixed` rows run with (docs/development.md, "Regression check").

A fixed copy keeps the checkpoint's payload (head kind, backbone, network config) and stores its weights
compactly enough for git: every floating tensor of two or more dimensions and at least 1024 values as int8
with one float32 scale per output channel (symmetric), the rest (biases, BatchNorm) as float32, the whole
file gzip-compressed. Read back, q * scale is one IEEE float32 product per value, so the fixed weights are
the same bits on every machine; they are not the trained weights, only close to them, which is all the
check needs: inference with weights that segment. An LWL network whose backbone still equals the pretrained
one (stage 1 freezes it) leaves the backbone out, marked `backbone_state: "pretrained"`; the LWL loader
builds it from the package's ImageNet weights.

    python -m methods fix-weights --checkpoint results/ci/training/frtm-refiner/head.pt \\
        --out tests/regression/weights/frtm-refiner.pt
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import torch

from vos_datasets.fileio import atomic_path

BACKBONE_PREFIX = "backbone."
GZIP_MAGIC = b"\x1f\x8b"
QUANTISED_MIN_VALUES = 1024


def read_payload(path: str | Path) -> dict:
    """A weights file's payload as data only (weights_only=True), a fixed copy's weights restored to float32."""
    with open(path, "rb") as file:
        compressed = file.read(2) == GZIP_MAGIC
    source = io.BytesIO(gzip.decompress(Path(path).read_bytes())) if compressed else path
    payload = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: holds a {type(payload).__name__}, not a weights file's dict; give a file written by "
                         "the training rule or `python -m methods fix-weights`")
    quantised = payload.pop("quantised", None)
    if quantised:
        payload["state_dict"] = {**payload["state_dict"], **{
            name: (entry["q"].float() * entry["scale"].view(-1, *[1] * (entry["q"].dim() - 1)))
            for name, entry in quantised.items()}}
    return payload


def _quantise(value: torch.Tensor) -> dict[str, torch.Tensor]:
    flat = value.float().reshape(value.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127
    return {"q": torch.round(flat / scale[:, None]).to(torch.int8).reshape(value.shape), "scale": scale}


def _pretrained_backbone_state(payload: dict) -> dict[str, torch.Tensor]:
    from methods.core.backbones import build_backbone
    from methods.lwl.networks import NetworkConfig

    backbone = build_backbone(NetworkConfig.from_dict(payload["network"]).backbone)
    return {BACKBONE_PREFIX + k: v for k, v in backbone.state_dict().items()}


def fix_weights(checkpoint: str | Path, out: str | Path) -> dict:
    """Write the compact fixed copy of `checkpoint` to `out`; returns what was kept (tensors, bytes, backbone)."""
    payload = read_payload(checkpoint)
    if "state_dict" not in payload:
        raise ValueError(f"{checkpoint}: not an FRTM head or LWL network file (no state_dict)")
    state = payload["state_dict"]
    backbone = "in file"
    if payload.get("method") == "lwl":
        pretrained = _pretrained_backbone_state(payload)
        ours = {k: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
        if ours.keys() == pretrained.keys() and all(torch.equal(ours[k], pretrained[k]) for k in ours):
            state = {k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX)}
            payload = {**payload, "backbone_state": "pretrained"}
            backbone = "pretrained (left out)"
    large = {k for k, v in state.items()
             if v.is_floating_point() and v.dim() >= 2 and v.numel() >= QUANTISED_MIN_VALUES}
    payload = {**payload, "fixed_from": Path(checkpoint).name,
               "state_dict": {k: v for k, v in state.items() if k not in large},
               "quantised": {k: _quantise(state[k]) for k in sorted(large)}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0))
    return {"tensors": len(state), "quantised": len(large), "bytes": Path(out).stat().st_size,
            "backbone": backbone}
