"""Which of the authors' released checkpoints a file is, told WITHOUT torch and without reading its weights: the
check the workflow runs on every released-weights row when it builds the DAG (validation.smk), and the record
of each file (name, size, sha256, method, backbone) that the provenance and the tables cite.

A torch checkpoint is a pickle that names its tensors' storages by reference (`persistent_load`): the zip
format keeps that pickle in `<archive>/data.pkl` beside one entry per storage, the legacy format (torch < 1.6,
which the 2020 releases may use) writes it at the start of the file before the storages' bytes. Reading only
that pickle gives every key with its shape and dtype at the cost of a few hundred kB, whatever the file's size
(the 150 MB LWL files included), so the check runs on every `snakemake -n` without a cache.

The pickle is read by a restricted unpickler, as methods.core.released reads the whole file: torch's tensor
and storage rebuilders become shape records, the official code's own classes (pytracking's NetConstructor,
statistics) inert placeholders, and any other global is refused before anything is built; nothing from the
file is imported or run.

What tells the files apart (the released code, README of the official fixtures):
- FRTM (`model`: `refiner.*` keys): ResNet-18 or ResNet-101 by the refiner's TSE.layer4 input width (256 /
  1024), as frtm-vos evaluate.py tells them; rn*_all, rn*_ytvos and rn101_dv share one layout (only the
  training data differ), so which of them a file is cannot be checked.
- LWL (`net`: `target_model.*`, `decoder.*`, the Mask R-CNN ResNet-50 under `feature_extractor.*`): the box-init
  network (lwl_boxinit.pth) adds `box_label_encoder.*`; lwl_stage2.pth has none.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FRTM_PREFIX = "refiner."
FRTM_BACKBONE_PROBE = "refiner.TSE.layer4.reduce.0.weight"  # its in-channels tell the backbone (evaluate.py)
FRTM_BACKBONE_BY_WIDTH = {256: "resnet18", 1024: "resnet101"}
LWL_PREFIXES = ("target_model.", "decoder.")
LWL_BACKBONE = "resnet50_mrcnn"
LWL_BACKBONE_PREFIX = "feature_extractor."
LWL_BOX_PREFIX = "box_label_encoder."
# Where the official code's own pickled objects live (pytracking: ltr, its legacy name dlframework,
# pytracking; FRTM: lib, model) and numpy (scalars in training statistics). Only these become placeholders.
OFFICIAL_NAMESPACES = ("ltr.", "dlframework.", "pytracking.", "lib.", "model.", "numpy.")
HELP = "give the authors' file as downloaded (docs/reproducing.md, 'Released weights')"

# Where the authors publish each file (docs/reproducing.md, "Released weights"), named in every message about one.
FRTM_SOURCE = "andr345/frtm-vos's README, 'Models': Google Drive links, or weights/download_weights.sh"
LWL_SOURCE = "visionml/pytracking's pytracking/MODEL_ZOO.md, VOS models, LWL"
SOURCES = {"frtm": FRTM_SOURCE, "lwl": LWL_SOURCE}

# The smallest a released file can be: its weights alone, float32 as the authors saved them (the key listings
# of the official fixtures, frtm_refiner_keys_rn18.json: 1,227,161 values; lwl_network_keys.json: 36,714,207
# values, backbone included). A download cut short or an HTML page saved under the file's name is smaller.
MIN_BYTES = {"frtm": 4 * 1_227_161, "lwl": 4 * 36_714_207}

# bytes per element of the storages a checkpoint names (torch.<Name>Storage)
_ELEMENT_BYTES = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                  "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16}
_TENSOR_REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER


@dataclass(frozen=True)
class Storage:
    dtype: str
    elements: int
    key: str


@dataclass(frozen=True)
class TensorListing:
    """A tensor as the pickle describes it: shape and dtype (its values are never read)."""

    shape: tuple[int, ...]
    dtype: str


class _Placeholder:
    """Stands for an object of the official code pickled beside the weights; takes anything, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _plain_dict(*args: Any) -> dict:
    return {}


def _tensor(storage: Any, offset: Any, size: Any, *rest: Any) -> TensorListing:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return TensorListing(tuple(int(n) for n in size), storage.dtype)


def _parameter(data: Any, *rest: Any) -> Any:
    return data


class _ListingUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self.path = path
        self.storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module == "torch._utils" and name in _TENSOR_REBUILDERS:
            return _tensor if name.startswith("_rebuild_tensor") else _parameter
        if module == "torch" and name.endswith("Storage") and name[: -len("Storage")] in _ELEMENT_BYTES:
            return name[: -len("Storage")]  # a storage type: its name is all the listing needs
        if full == "collections.OrderedDict":
            return OrderedDict
        if full == "collections.defaultdict":
            return _plain_dict
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if full.startswith(OFFICIAL_NAMESPACES):
            return _Placeholder
        raise ValueError(f"{self.path}: refused: it pickles {full}, which no released FRTM/LWL checkpoint holds "
                         f"(loading it would run code); {HELP}")

    def persistent_load(self, saved_id: Any) -> Storage:
        kind = saved_id[0].decode() if isinstance(saved_id[0], bytes) else saved_id[0]
        if kind != "storage" or not isinstance(saved_id[1], str):
            raise ValueError(f"{self.path}: refused: it pickles a {kind!r} object, not tensor storages; {HELP}")
        dtype, key, elements = saved_id[1], str(saved_id[2]), int(saved_id[4])
        return self.storages.setdefault(key, Storage(dtype, elements, key))


def _read_pickle(path: Path) -> tuple[Any, dict[str, Storage]]:
    """The checkpoint's pickled object (tensors as TensorListing) and its storages, read without torch."""
    with path.open("rb") as file:
        head = file.read(4)
        file.seek(0)
        if head.startswith(b"PK"):
            with zipfile.ZipFile(file) as archive:
                names = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
                if len(names) != 1:
                    raise ValueError(f"{path}: a zip archive without torch's data.pkl; {HELP}")
                unpickler = _ListingUnpickler(archive.open(names[0]), path)
                return unpickler.load(), unpickler.storages
        if pickle.load(file) != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint; {HELP}")
        pickle.load(file), pickle.load(file)  # protocol version, system info
        unpickler = _ListingUnpickler(file, path)
        return unpickler.load(), unpickler.storages


def read_listing(path: str | Path) -> tuple[Any, dict[str, Storage]]:
    """read_pickle with every failure as one line naming the file."""
    path = Path(path)
    try:
        return _read_pickle(path)
    except ValueError:
        raise
    except Exception as error:  # truncated, corrupt, not a pickle: the errors vary
        detail = (str(error).splitlines() or [type(error).__name__])[0][:160]
        raise ValueError(f"{path}: cannot be read as a torch checkpoint ({detail}); {HELP}") from None


def _section(payload: Any, name: str, prefixes: tuple[str, ...]) -> dict[str, TensorListing] | None:
    section = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(section, dict) or not any(isinstance(k, str) and k.startswith(prefixes) for k in section):
        return None
    return section


def describe(path: str | Path) -> dict:
    """What a released file holds, read without torch: {"method", "backbone", "model", "tensors", ...};
    a ValueError in one line naming the file for anything else."""
    path = Path(path)
    size = path.stat().st_size
    payload, storages = read_listing(path)
    stored = sum(s.elements * _ELEMENT_BYTES[s.dtype] for s in storages.values())
    if stored > size:
        raise ValueError(f"{path}: {size:,} bytes, less than the {stored:,} its tensors need (a download cut "
                         f"short?); {HELP}")
    frtm, lwl = _section(payload, "model", (FRTM_PREFIX,)), _section(payload, "net", LWL_PREFIXES)
    state = frtm if frtm is not None else lwl
    if state is None:
        keys = sorted(map(str, payload))[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: neither an FRTM checkpoint (`model` with refiner.* keys) nor an LWL one (`net` "
                         f"with target_model.* / decoder.* keys; it holds {keys}); {HELP}")
    odd = [key for key, value in state.items() if not isinstance(value, TensorListing)]
    if odd:
        raise ValueError(f"{path}: `{odd[0]}` is not a tensor (the file needs code to load); refused; {HELP}")
    facts = {"size": size, "tensors": len(state), "values": sum(math.prod(t.shape) for t in state.values())}
    if frtm is not None:
        probe = frtm.get(FRTM_BACKBONE_PROBE)
        width = probe.shape[1] if probe is not None and len(probe.shape) == 4 else None
        if width not in FRTM_BACKBONE_BY_WIDTH:
            raise ValueError(f"{path}: an FRTM checkpoint whose {FRTM_BACKBONE_PROBE} has "
                             f"{'no' if width is None else width} input channels (256: ResNet-18, 1024: "
                             f"ResNet-101); {HELP}")
        return {"method": "frtm", "backbone": FRTM_BACKBONE_BY_WIDTH[width], "model": "refiner", **facts}
    if not any(key.startswith(LWL_BACKBONE_PREFIX) for key in lwl):
        raise ValueError(f"{path}: an LWL checkpoint without its backbone ({LWL_BACKBONE_PREFIX}*); {HELP}")
    box = any(key.startswith(LWL_BOX_PREFIX) for key in lwl)
    return {"method": "lwl", "backbone": LWL_BACKBONE, "model": "box-init" if box else "stage2", **facts}


@dataclass(frozen=True)
class Expected:
    """What a row needs its released file to be: method, backbone (FRTM) and model (LWL: stage2 / box-init)."""

    method: str
    backbone: str | None = None
    model: str | None = None

    def name(self) -> str:
        if self.method == "frtm":
            depth = {"resnet18": "18", "resnet101": "101"}.get(self.backbone or "", "?")
            return f"an FRTM ResNet-{depth} refiner (rn{depth}_*.pth)"
        return "the LWL box-init network (lwl_boxinit.pth)" if self.model == "box-init" else \
            "the LWL stage-2 network (lwl_stage2.pth)"


def _found_name(facts: dict) -> str:
    return Expected(facts["method"], facts.get("backbone"), facts.get("model")).name()


def check(path: str | Path, expected: Expected, row: str) -> dict:
    """The file's facts (describe) when it is what `row` needs; else a ValueError in one line naming the file,
    what it holds, what the row needs and where the authors publish the right one."""
    path = Path(path)
    fix = f"put the authors' {path.name} there (published in {SOURCES[expected.method]})"
    size = path.stat().st_size
    if size < MIN_BYTES[expected.method]:
        raise ValueError(f"released weights {path}: {size:,} bytes, where {expected.name()} takes at least "
                         f"{MIN_BYTES[expected.method] / 1e6:.1f} MB; {fix}")
    try:
        facts = describe(path)
    except ValueError as error:
        raise ValueError(f"released weights {str(error).split('; ' + HELP)[0]}; {fix}") from None
    wanted = {"method": expected.method, "backbone": expected.backbone, "model": expected.model}
    if any(value is not None and facts[key] != value for key, value in wanted.items()):
        raise ValueError(f"released weights {path}: holds {_found_name(facts)}, but row {row} needs "
                         f"{expected.name()}; {fix}")
    return facts


def record(path: str | Path) -> dict:
    """The record of a released file the provenance and the tables cite: name, size, sha256 and what it holds."""
    from vos_datasets.download import sha256_of

    path = Path(path)
    return {"name": path.name, "path": str(path), **describe(path), "sha256": sha256_of(path)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check a released checkpoint and write its record (JSON).")
    parser.add_argument("file")
    parser.add_argument("--method", required=True, choices=sorted(SOURCES))
    parser.add_argument("--backbone")
    parser.add_argument("--model", choices=["stage2", "box-init"])
    parser.add_argument("--row", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        check(args.file, Expected(args.method, args.backbone, args.model), args.row)
    except (ValueError, OSError) as error:
        raise SystemExit(str(error)) from None
    from vos_datasets.fileio import atomic_write_text

    atomic_write_text(args.out, json.dumps(record(args.file), indent=1) + "\n")


if __name__ == "__main__":
    main()
