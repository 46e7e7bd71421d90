"""Check a composed config before anything is built, and say what is wrong in one line.

Every group node has a ``_target_``, and its keys are that constructor's arguments, so the constructor's
signature is the node's schema: a key it does not take is unknown (``did you mean `model.hidden_size`?``),
and a value of the wrong scalar type (``trainer.max_steps=abc``) is refused before the model, the data,
the output's W&B run or the Trainer exist. The run-level keys have no constructor: :class:`RunKeys`, a
structured config, types them. :data:`RANGES` adds the ranges a type cannot say (``optimizer.lr`` > 0).

:func:`composition_error` turns Hydra's own composition errors (a typo in a key, an unknown group option)
into the same kind of line.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Literal, Union

import torch
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnlab.training.resolvers import usable_cores

HYDRA_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


class ConfigError(ValueError):
    """A bad config value; the message is the one line the user sees."""


@dataclass
class RunKeys:
    """The run-level keys of conf/config.yaml that no constructor takes (see the comments there)."""

    seed: int = 0
    output_dir: str | None = None
    resume: str | None = None
    skip_completed: bool = False
    checkpoint_every_n_steps: int = 250
    progress_bar: bool = True
    threads: int | None = None
    keep_freed_memory: bool = True


def _number(test):
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and test(v)


def _integer(test):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and test(v)


# full key -> (test, what a good value is, an example)
RANGES = {
    "seed": (_integer(lambda v: v >= 0), "an integer ≥ 0", "0"),
    "threads": (lambda v: v is None or _integer(lambda n: n >= 1)(v), "null or an integer ≥ 1", "1"),
    "checkpoint_every_n_steps": (_integer(lambda v: v >= 0), "a positive integer or 0 (at the end only)", "250"),
    "diagnostics.every_n_steps": (_integer(lambda v: v >= 0), "a positive integer or 0 (off)", "50"),
    "model.hidden_size": (_integer(lambda v: v >= 1), "a positive integer", "128"),
    "model.num_layers": (_integer(lambda v: v >= 1), "a positive integer", "2"),
    "model.dropout": (_number(lambda v: 0 <= v < 1), "in [0, 1)", "0.2"),
    "optimizer.lr": (_number(lambda v: v > 0), "a positive number", "1e-3"),
    "trainer.max_steps": (_integer(lambda v: v == -1 or v >= 1), "a positive integer (or -1: no limit)", "1500"),
    "data.batch_size": (_integer(lambda v: v >= 1), "a positive integer", "64"),
    "weight_noise.sigma": (lambda v: v is None or _number(lambda s: s >= 0)(v), "null (off) or a number ≥ 0", "0.075"),
    "lr_anneal": (lambda v: v is None or _number(lambda f: 0 < f < 1)(v), "null or a factor in (0, 1)", "0.25"),
}


def _did_you_mean(key: str, candidates, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, [c for c in candidates if not c.startswith("_")], n=1, cutoff=0.6)
    return f": did you mean `{prefix}{close[0]}`?" if close else ""


def _scalar_types(hint) -> set | None:
    """The values a hint allows as a set of scalar types / Literal values, or None when it allows more than
    scalars (a class, a list, ...), which we then leave to the constructor."""
    if hint in (int, float, bool, str, type(None)):
        return {hint}
    origin = typing.get_origin(hint)
    if origin is Literal:
        return {("literal", a) for a in typing.get_args(hint)}
    if origin in (Union, types.UnionType):
        parts = [_scalar_types(a) for a in typing.get_args(hint)]
        return None if any(p is None for p in parts) else set().union(*parts)
    return None


def _allows(value, allowed: set) -> bool:
    kind = type(value)
    if kind is int and float in allowed:
        return True
    return kind in allowed or ("literal", value) in allowed


def _describe(allowed: set) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return " or ".join(sorted(names[a] if a in names else repr(a[1]) for a in allowed))


def _check_target_node(path: str, node: dict) -> None:
    """Keys of a ``_target_`` node against its constructor's signature; scalar values against its hints."""
    try:
        target = get_object(node["_target_"])
    except Exception as error:  # noqa: BLE001 - an unimportable target is itself the one-line error
        raise ConfigError(f"{path}._target_={node['_target_']}: cannot import it ({error})") from None  # train's error line reports the innermost cause: this line is it
    init = target.__init__ if inspect.isclass(target) else target
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - hints a library wrote for its own tools: use what we can
        hints = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in node.items():
        full = f"{path}.{key}"
        if key in HYDRA_KEYS or isinstance(value, (dict, list)):
            continue  # nested nodes are checked on their own
        if key not in params:
            if takes_any:
                continue
            hint = _did_you_mean(key, params, path + ".")
            raise ConfigError(f"unknown key `{full}`" + (hint or f" ({node['_target_']} takes: "
                                                         f"{', '.join(p for p in params if p != 'self')})"))
        allowed = _scalar_types(hints.get(key))
        # null is left to the code: several keys mean "decided later" by it (embeddings.dim of a file)
        if allowed is not None and value is not None and full not in RANGES and not _allows(value, allowed):
            raise ConfigError(f"{full} must be {_describe(allowed)}, got {value!r}")


def _walk(path: str, node) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            _check_target_node(path, node)
        for key, value in node.items():
            _walk(f"{path}.{key}" if path else str(key), value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(f"{path}[{i}]", value)
    elif node == "???":
        raise ConfigError(f"{path} has no value: set {path}=…")


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (one line: the full key, the bad value, the fix) for the first problem."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{getattr(error, 'full_key', '') or 'config'}: {str(error).splitlines()[0]}") from None
    for key, (test, what, example) in RANGES.items():
        found = OmegaConf.select(cfg, key, default="<absent>")
        if found != "<absent>" and not test(found):
            raise ConfigError(f"{key} must be {what}, got {found!r}; e.g. {key}={example}")
    run_keys = {k: plain[k] for k in RunKeys.__dataclass_fields__ if k in plain}
    try:
        OmegaConf.merge(OmegaConf.structured(RunKeys), run_keys)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "")
        raise ConfigError(f"{key} must be {RunKeys.__annotations__[key]}, got {plain.get(key)!r}") from None
    if plain.get("lr_anneal") is not None and plain.get("scheduler"):
        raise ConfigError(f"lr_anneal={plain['lr_anneal']} and scheduler are both set; keep one, e.g. scheduler=null")
    _walk("", plain)


def composition_error(error: Exception) -> str | None:
    """One line for a Hydra composition error we can explain, else None (let Hydra report it)."""
    if isinstance(error, MissingConfigException) and error.options is not None and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        options = [o for o in error.options if not o.startswith("_")]
        hint = _did_you_mean(choice, options, f"{group}=")
        return f"{group}={choice}: no such option{hint or ';'} choose one of {', '.join(options)}"
    cause = error.__cause__
    if isinstance(error, ConfigCompositionException) and isinstance(cause, OmegaConfBaseException):
        full_key, parent = getattr(cause, "full_key", None), getattr(cause, "parent_node", None)
        if full_key and isinstance(parent, DictConfig) and "not in struct" in str(cause):
            prefix, _, key = full_key.rpartition(".")
            candidates = list(parent.keys())
            if "_target_" in parent:
                with contextlib.suppress(Exception):  # the keys we have are suggestion enough
                    candidates += list(inspect.signature(get_object(parent["_target_"])).parameters)
            hint = _did_you_mean(key, candidates, prefix + "." if prefix else "")
            return f"unknown key `{full_key}`{hint or ' (python run.py --cfg job lists the keys)'}"
    if isinstance(error, (ConfigCompositionException, OverrideParseException)):
        return " ".join(str(error).split("\n", 1)[0:1])
    return None


def check_devices(trainer_cfg: DictConfig) -> None:
    """Refuse more devices than this machine has, before anything starts: Lightning says less, and later
    (on CPU it even starts more processes than there are cores)."""
    devices, accelerator = trainer_cfg.get("devices"), trainer_cfg.get("accelerator")
    if accelerator in ("gpu", "cuda"):
        available, what = (torch.cuda.device_count() if torch.cuda.is_available() else 0), "CUDA GPUs"
    elif accelerator == "cpu":
        available, what = usable_cores(), "usable CPU cores"
    else:
        return  # "auto" or another accelerator: Lightning decides
    if available == 0:
        raise ValueError(f"trainer.accelerator={accelerator} but no CUDA GPU is visible here: use trainer=cpu")
    if isinstance(devices, (list, ListConfig)):  # device indices: the highest must exist
        devices = list(devices)
        wanted = max(devices) + 1 if devices else 0
    else:  # a count, or "auto" / -1 for Lightning to resolve
        wanted = devices if isinstance(devices, int) and not isinstance(devices, bool) else 0
    if wanted > available:
        raise ValueError(f"trainer.devices={devices} but this machine has {available} {what}: "
                         f"set trainer.devices to at most {available}")
