"""Settings: dataclasses that are at once the defaults, the command-line flags and the
``params.yaml`` schema.

Each command describes its settings as a dataclass.  :func:`add_arguments` turns every field
into a flag (``sd_lambda`` -> ``--sd-lambda``); :func:`resolve` merges, in order, the
dataclass defaults, the command's section of a params file (``--params FILE``, keys are the
flag names with underscores) and the flags given on the command line, checks types and
calls the dataclass's ``validate()``.  Every problem is a one-line :class:`UserError`
naming the setting, raised before any work is done.

Field metadata understood here:

``help``         the flag's help text;
``choices``      allowed values;
``fingerprint``  ``False`` for settings that do not change a run's trajectory (output
                 folder, device, progress display); the others make up the fingerprint
                 that a checkpoint must match to be resumed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> tuple[type, bool]:
    """Return (scalar type, optional?) of an annotation such as ``int | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported settings annotation {tp}")
        return args[0], True
    return tp, False


def _fields(cls) -> list[tuple[dataclasses.Field, type, bool]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, optional = _base_type(hints[f.name])
        out.append((f, base, optional))
    return out


def _parse_bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser, cls, section: str) -> None:
    """Add one flag per settings field plus ``--params FILE``."""
    parser.add_argument(
        "--params",
        metavar="FILE",
        help=f"YAML params file; its '{section}:' section sets defaults that flags override",
    )
    for f, base, _optional in _fields(cls):
        kwargs: dict[str, Any] = {"default": None, "dest": f.name}
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        kwargs["help"] = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        if "choices" in f.metadata:
            # Checked in from_mapping, so that a bad value is one line naming the setting.
            kwargs["help"] += " [choices: " + ", ".join(map(str, f.metadata["choices"])) + "]"
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
            kwargs["metavar"] = f.metadata.get("metavar", base.__name__.upper())
        parser.add_argument(_flag(f.name), **kwargs)


def _coerce(value: Any, base: type, optional: bool, where: str) -> Any:
    if value is None:
        if optional:
            return None
        raise UserError(f"{where} must be set (got null)")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where} must be a number, got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported settings type {base}")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML params file that must hold a mapping of sections (one-line errors)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"params file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"params file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"params file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def read_params_section(path: str | Path, section: str) -> dict[str, Any]:
    """Read ``section`` of a YAML params file (a missing file or section is an error)."""
    path = Path(path)
    data = read_yaml_mapping(path)
    if section not in data:
        raise UserError(f"params file {path} has no '{section}:' section; add one or drop --params")
    body = data[section] or {}
    if not isinstance(body, dict):
        raise UserError(f"{path}: '{section}:' must be a mapping of settings")
    return body


def from_mapping(cls, mapping: dict[str, Any], where: str, base: Any = None):
    """Build ``cls`` from a mapping of settings, rejecting unknown keys and wrong types."""
    fields = {f.name: (f, b, o) for f, b, o in _fields(cls)}
    values = {} if base is None else dataclasses.asdict(base)
    for key, value in mapping.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise UserError(f"{where}.{key} is not a known setting (known: {known})")
        f, b, o = fields[key]
        value = _coerce(value, b, o, f"{where}.{key}")
        if "choices" in f.metadata and value is not None and value not in f.metadata["choices"]:
            allowed = ", ".join(map(str, f.metadata["choices"]))
            raise UserError(f"{where}.{key} must be one of {allowed}, got {value!r}")
        values[key] = value
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def resolve(cls, section: str, args: argparse.Namespace):
    """Defaults < params file section < command-line flags; then ``validate()``."""
    cfg = cls()
    if getattr(args, "params", None):
        cfg = from_mapping(cls, read_params_section(args.params, section), f"{args.params}: {section}", cfg)
    overrides = {}
    for f, _b, _o in _fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = value
    return from_mapping(cls, overrides, "setting", cfg) if overrides else _validated(cfg)


def _validated(cfg):
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def require(condition: bool, setting: str, message: str) -> None:
    """Raise a one-line error naming ``setting`` (a field name) unless ``condition``."""
    if not condition:
        raise UserError(f"{_flag(setting)}: {message}")


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def fingerprint_fields(cfg) -> dict[str, Any]:
    """The settings that determine a run's trajectory (metadata ``fingerprint`` not False)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.metadata.get("fingerprint", True)}


def fingerprint(cfg) -> str:
    blob = json.dumps(fingerprint_fields(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprint dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key, "<absent>") != current.get(key, "<absent>"):
            out.append(
                f"{_flag(key)} was {saved.get(key, '<absent>')!r} in the checkpoint, now {current.get(key, '<absent>')!r}"
            )
    return out


def setting(default: Any, help: str = "", **meta: Any) -> Any:
    """Shorthand for a settings field with help text and metadata."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})
