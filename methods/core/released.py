"""Reading the authors' RELEASED checkpoints as data, without running any code that comes with them.

The files a user downloads (docs/reproducing.md, "Released weights"):
- FRTM (andr345/frtm-vos): rn18_ytvos.pth, rn18_all.pth, rn101_ytvos.pth, rn101_all.pth, rn101_dv.pth.
  `lib/training.py: Trainer.save_checkpoint` wrote dict(name, epoch, stats, model, optimizer, scheduler);
  `model` is the refiner's state dict, every key starting with `refiner.`. There are no backbone keys: the
  backbone is torchvision's ImageNet ResNet. ResNet-18 and ResNet-101 files differ only in the refiner's input
  widths; evaluate.py tells them apart by `refiner.TSE.layer4.reduce.0.weight`.shape[1] (256 / 1024).
- LWL (visionml/pytracking): lwl_stage2.pth, lwl_boxinit.pth. `ltr/trainers/base_trainer.py` wrote
  dict(epoch, actor_type, net_type, net, net_info, constructor, optimizer, stats, settings); `net` holds every
  key, the Mask R-CNN ResNet-50 under `feature_extractor.*`; `constructor` is a pickled
  `ltr.admin.model_constructor.NetConstructor` (fun_name, fun_module, args, kwds) that the official loader
  calls to build the network (`net_constr.get()` imports fun_module and calls fun_name).

How reading stays safe (nothing from the file is imported or executed):
1. torch.load(weights_only=True): torch's restricted unpickler builds only tensors, plain containers and
   values, and the names explicitly registered for this one call; it never imports a module.
2. A name the official code pickles beside the weights (its own bookkeeping classes: pytracking's
   NetConstructor, stats and settings objects, FRTM's AverageMeter, numpy scalars in statistics) is
   registered as an INERT stand-in class defined here (`PickledObject`), never the real class. A stand-in
   only stores what the pickle hands it (the arguments and the attribute dict); it has no other behaviour.
   `collections.defaultdict` (FRTM's stats) is read as a plain dict.
3. Any other global (builtins.exec, os.system, subprocess.Popen, ...) is refused before anything is built:
   no released checkpoint holds one. Torch itself blocks the os / posix / sys modules outright.
4. The weights must be tensors: a stand-in (or anything else) where a tensor is expected is refused.
So the NetConstructor becomes plain data: `info["constructor"]` = {"pickled_class", "fun_module", "fun_name",
"args", "kwds"}. It is recorded for provenance and checks only; nothing ever calls it.

Loaders (FRTM's refiner mapping, LWL's network mapping) call `read_released_checkpoint(path)` and map
`state_dict` (the file's own keys, as they are) onto our modules.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# the released layouts, shared with the torch-free check the workflow runs when it builds the DAG
from methods.core.released_check import (
    FRTM_BACKBONE_BY_WIDTH,
    FRTM_BACKBONE_PROBE,
    FRTM_PREFIX,
    HELP,
    LWL_BACKBONE,
    LWL_BOX_PREFIX,
    LWL_PREFIXES,
    OFFICIAL_NAMESPACES,
)

MAX_STAND_INS = 64  # a released file pickles a handful of such classes; more means it is something else


class PickledObject:
    """Inert stand-in for an object the official code pickled beside its weights. It keeps the data the
    pickle hands over (call arguments, attribute dict) and does nothing else; the real class is never
    imported. `pickled_class` names what it stands for."""

    pickled_class = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        instance = super().__new__(cls)
        instance.pickled_args = args
        instance.pickled_state = None
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # the arguments were kept by __new__

    def __setstate__(self, state: Any) -> None:
        self.pickled_state = state

    def as_data(self) -> dict:
        """What the pickle held, as plain data: {"pickled_class", "args"?, **attributes}."""
        data: dict[str, Any] = {"pickled_class": self.pickled_class}
        if self.pickled_args:
            data["args"] = as_plain_data(list(self.pickled_args))
        state = self.pickled_state
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict, slots) as pickle's BUILD gives it
        if isinstance(state, dict):
            data.update({str(key): as_plain_data(value) for key, value in state.items()})
        elif state is not None:
            data["state"] = as_plain_data(state)
        return data


def _stand_in(name: str) -> type[PickledObject]:
    return type(f"PickledObject[{name}]", (PickledObject,), {"pickled_class": name, "__module__": __name__})


def _plain_dict(*args: Any) -> dict:
    """`collections.defaultdict(factory)` read as a plain dict (the factory, a stand-in, is dropped)."""
    return {}


CONTAINERS = {"collections.defaultdict": _plain_dict}


def as_plain_data(value: Any) -> Any:
    """Containers, numbers and strings as they are, stand-ins as dicts, tensors summarised by shape."""
    if isinstance(value, PickledObject):
        return value.as_data()
    if isinstance(value, dict):
        return {key if isinstance(key, (str, int, float)) else str(key): as_plain_data(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain_data(item) for item in value]
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """A released checkpoint as data. `state_dict` is the file's own state dict with its own keys (FRTM:
    `model`, keys `refiner.*`; LWL: `net`, backbone keys `feature_extractor.*`). `info` holds plain data:
    path, backbone, and per kind name/epoch (FRTM) or net_type, box_init, constructor, epoch (LWL)."""

    kind: str  # "frtm" or "lwl"
    state_dict: dict[str, torch.Tensor]
    info: dict = field(default_factory=dict)

    @property
    def backbone(self) -> str:
        return self.info["backbone"]


def _rejected_global(message: str) -> tuple[str | None, bool]:
    """(the global torch's weights-only unpickler refused, whether its module is blocked outright)."""
    message = message.split("WeightsUnpickler error:", 1)[-1]
    found = re.search(r"GLOBAL (\S+)", message)
    return (found.group(1) if found else None), "is blocked" in message


def _first_line(error: BaseException) -> str:
    text = str(error).split("WeightsUnpickler error:", 1)[-1].strip()
    return (text.splitlines() or [type(error).__name__])[0][:200]


def load_as_data(path: str | Path) -> tuple[Any, list[str]]:
    """The file's payload, read with torch's weights-only unpickler plus inert stand-ins for the official
    code's own classes (module docstring); returns (payload, the names replaced by stand-ins)."""
    replacements: dict[str, Any] = {}
    while True:
        try:
            with torch.serialization.safe_globals([(obj, name) for name, obj in replacements.items()]):
                payload = torch.load(path, map_location="cpu", weights_only=True)
            return payload, sorted(replacements)
        except pickle.UnpicklingError as error:
            name, blocked = _rejected_global(str(error))
            if name is None or name in replacements:
                raise ValueError(f"{path}: cannot be read as data ({_first_line(error)}); {HELP}") from None
            if blocked or not (name in CONTAINERS or name.startswith(OFFICIAL_NAMESPACES)):
                raise ValueError(f"{path}: refused: it pickles {name}, which no released FRTM/LWL checkpoint "
                                 f"holds (loading it would run code); {HELP}") from None
            if len(replacements) >= MAX_STAND_INS:
                raise ValueError(f"{path}: refused: it pickles more than {MAX_STAND_INS} classes of its own; "
                                 f"{HELP}") from None
            replacements[name] = CONTAINERS.get(name) or _stand_in(name)
        except Exception as error:  # not a torch file, truncated, corrupt: the unpickler's own errors vary
            raise ValueError(f"{path}: cannot be read as a checkpoint ({_first_line(error)}); {HELP}") from None


def _tensors_only(path: str | Path, section: str, state: Any) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise ValueError(f"{path}: `{section}` is a {type(state).__name__}, not a state dict; {HELP}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            shown = value.pickled_class if isinstance(value, PickledObject) else type(value).__name__
            raise ValueError(f"{path}: `{section}[{key!r}]` is a {shown} where a tensor is expected (the file "
                             f"needs code to load); refused; {HELP}")
    return state


def _has_prefix(state: Any, prefixes: tuple[str, ...]) -> bool:
    return isinstance(state, dict) and any(isinstance(k, str) and k.startswith(prefixes) for k in state)


def read_released_checkpoint(path: str | Path) -> ReleasedCheckpoint:
    """A released FRTM or LWL checkpoint as data (kind, state dict, info); one-line ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: released weights not found; download them (docs/reproducing.md, 'Released "
                                "weights') and set `released_weights` in config.yaml")
    payload, stand_ins = load_as_data(path)
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: holds a {type(payload).__name__}, not a checkpoint dict; {HELP}")
    info: dict[str, Any] = {"path": str(path), "stand_ins": stand_ins}
    if _has_prefix(payload.get("model"), (FRTM_PREFIX,)):
        state = _tensors_only(path, "model", payload["model"])
        probe = state.get(FRTM_BACKBONE_PROBE)
        width = probe.shape[1] if probe is not None and probe.dim() == 4 else None
        if width not in FRTM_BACKBONE_BY_WIDTH:
            raise ValueError(f"{path}: an FRTM checkpoint whose {FRTM_BACKBONE_PROBE} has "
                             f"{'no' if width is None else width} input channels (256: ResNet-18, 1024: "
                             f"ResNet-101); {HELP}")
        info.update(backbone=FRTM_BACKBONE_BY_WIDTH[width], name=as_plain_data(payload.get("name")),
                    epoch=as_plain_data(payload.get("epoch")))
        return ReleasedCheckpoint("frtm", state, info)
    if _has_prefix(payload.get("net"), LWL_PREFIXES):
        state = _tensors_only(path, "net", payload["net"])
        constructor = payload.get("constructor")
        info.update(backbone=LWL_BACKBONE, net_type=as_plain_data(payload.get("net_type")),
                    box_init=any(key.startswith(LWL_BOX_PREFIX) for key in state),
                    constructor=as_plain_data(constructor) if constructor is not None else None,
                    epoch=as_plain_data(payload.get("epoch")), net_info=as_plain_data(payload.get("net_info")))
        return ReleasedCheckpoint("lwl", state, info)
    raise ValueError(f"{path}: neither an FRTM checkpoint (`model` with refiner.* keys) nor an LWL one (`net` "
                     f"with target_model.* / decoder.* keys; top-level keys {sorted(map(str, payload))[:8]}); {HELP}")
