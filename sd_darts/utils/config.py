"""Settings: dataclasses that are at once the defaults, the command-line flags and the
``params.yaml`` schema.

:func:`resolve` merges defaults, the params file's section and the flags, then checks every value
once (:func:`build`) so a bad setting is one :class:`UserError` before any work; field metadata
(:func:`setting`) and the merge order: docs/ARCHITECTURE.md, "Settings".
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from ..errors import UserError
from .files import bounded, key_text


class SettingError(UserError):
    """A bad value of one setting; :func:`build` prefixes the place the value came from."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        self.problem = message
        super().__init__(f"{flag(setting)}: {message}")


def flag(name: str) -> str:
    """The command-line flag of a settings field: ``sd_lambda`` -> ``--sd-lambda``."""
    return "--" + name.replace("_", "-")


def setting(default: Any, help: str = "", **meta: Any) -> Any:
    """A settings field with help text and metadata (``choices``, ``ge``, ``gt``, ``le``, ``lt``, ``max_len``, ``fingerprint``)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def require(condition: bool, setting: str, message: str) -> None:
    """Raise a one-line error naming ``setting`` (a field name) unless ``condition``."""
    if not condition:
        raise SettingError(setting, message)


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldType:
    """The type of one settings field: a scalar or a list of scalars, maybe optional."""

    scalar: type
    is_list: bool = False
    optional: bool = False

    @property
    def name(self) -> str:
        return f"list of {self.scalar.__name__}" if self.is_list else self.scalar.__name__


def field_type(annotation: Any) -> FieldType:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported settings annotation {annotation}")
        annotation, optional = args[0], True
        origin = typing.get_origin(annotation)
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return FieldType(inner, is_list=True, optional=optional)
    if origin is dict or annotation is dict:
        return FieldType(dict, optional=optional)
    if annotation not in (int, float, str, bool):
        raise TypeError(f"unsupported settings annotation {annotation}")
    return FieldType(annotation, optional=optional)


def fields(cls) -> list[tuple[dataclasses.Field, FieldType]]:
    hints = typing.get_type_hints(cls)
    return [(f, field_type(hints[f.name])) for f in dataclasses.fields(cls)]


def _scalar(value: Any, typ: type, meta: dict[str, Any]) -> Any:
    """Check one scalar against its type, bounds and choices; raise ValueError(problem)."""
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {bounded(value)}")
        return value
    if typ is dict:  # a mapping of settings, checked by whoever applies it
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"must be a mapping of settings, got {bounded(value)}")
        return dict(value)
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {bounded(value)}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {bounded(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {bounded(value)}")
    elif typ is str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {bounded(value)}")
    for key, ok, words in (
        ("ge", lambda v, b: v >= b, "at least"),
        ("gt", lambda v, b: v > b, "greater than"),
        ("le", lambda v, b: v <= b, "at most"),
        ("lt", lambda v, b: v < b, "less than"),
    ):
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ValueError(f"must be {words} {bound}, got {bounded(value)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"must be one of {', '.join(map(str, choices))}, got {bounded(value)}")
    return value


def check_value(value: Any, ftype: FieldType, meta: dict[str, Any]) -> Any:
    """The value of one field after type, range and choice checks; ``ValueError(problem)`` if bad."""
    if value is None:
        if ftype.optional:
            return None
        raise ValueError("must be set (got null)")
    if not ftype.is_list:
        return _scalar(value, ftype.scalar, meta)
    if not isinstance(value, list):
        raise ValueError(f"must be a list, got {bounded(value)}")
    if not value and not meta.get("empty_ok", False):
        raise ValueError("must be a non-empty list")
    cap = meta.get("max_len")
    if cap is not None and len(value) > cap:
        raise ValueError(f"lists {len(value)} values, at most {cap} are allowed; list fewer")
    items = []
    for i, item in enumerate(value):
        try:
            items.append(_scalar(item, ftype.scalar, meta))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
    if len(set(items)) != len(items):
        raise ValueError(f"has duplicate values {bounded(value)}")
    return items


# --------------------------------------------------------------------------------------------
# Building settings
# --------------------------------------------------------------------------------------------


def build(cls, layers: list[tuple[dict[str, Any], Any]]):
    """Merge ``layers`` over the defaults of ``cls``, then check everything once.

    ``layers`` is a list of ``(mapping, where)`` applied in order; ``where`` says where the
    mapping came from for messages: a string (``"params.yaml: search"``, keys are then named
    ``params.yaml: search.key``) or ``None`` for command-line flags (named ``--key``).
    """
    specs = {f.name: (f, t) for f, t in fields(cls)}
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for f, _t in specs.values():
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
        source[f.name] = flag(f.name)
    for mapping, where in layers:
        for key, value in mapping.items():
            name = flag(key_text(key)) if where is None else f"{where}.{key_text(key)}"
            if not isinstance(key, str) or key not in specs:
                known = ", ".join(sorted(specs))
                raise UserError(f"{name} is not a known setting (known: {known})")
            values[key] = value
            source[key] = name
    for key, (f, t) in specs.items():
        try:
            values[key] = check_value(values[key], t, f.metadata)
        except ValueError as exc:
            raise UserError(f"{source[key]}: {exc}") from None
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        try:
            validate()
        except SettingError as exc:
            raise UserError(f"{source.get(exc.setting, flag(exc.setting))}: {exc.problem}") from None
    return cfg


def from_mapping(cls, mapping: dict[str, Any], where: str, base: Any = None):
    """Build ``cls`` from one mapping of settings (over ``base``'s values if given)."""
    layers = [] if base is None else [(dataclasses.asdict(base), where)]
    return build(cls, layers + [(mapping, where)])


def add_arguments(parser: argparse.ArgumentParser, cls, section: str) -> None:
    """Add one flag per settings field plus ``--params FILE`` (``section``: the section it reads)."""
    parser.add_argument(
        "--params",
        metavar="FILE",
        help=f"YAML params file; its {section} section sets defaults that flags override",
    )
    for f, t in fields(cls):
        kwargs: dict[str, Any] = {"default": None, "dest": f.name}
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if "default" in help_text.lower():  # the help text says it (e.g. "default: the space's, 16")
            kwargs["help"] = help_text
        else:
            kwargs["help"] = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        if "choices" in f.metadata:
            # Checked in build(), so that a bad value is one line naming the setting.
            kwargs["help"] += " [choices: " + ", ".join(map(str, f.metadata["choices"])) + "]"
        if t.scalar is dict:
            continue  # mappings come from params files only
        if t.scalar is bool and not t.is_list:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif t.is_list:
            kwargs["type"] = _list_parser(t.scalar)
            kwargs["metavar"] = f"{t.scalar.__name__.upper()},..."
        else:
            kwargs["type"] = _float_arg if t.scalar is float else t.scalar
            kwargs["metavar"] = f.metadata.get("metavar", t.scalar.__name__.upper())
        parser.add_argument(flag(f.name), **kwargs)


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {bounded(text)}") from None


def _list_parser(scalar: type):
    def parse(text: str) -> list:
        try:
            return [scalar(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {scalar.__name__}, got {bounded(text)}"
            ) from None

    return parse


def read_yaml_mapping(path: str | Path, what: str = "params file") -> dict[str, Any]:
    """Read a YAML params file that must hold a mapping of sections (one-line errors)."""
    from .files import read_yaml

    data = read_yaml(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def read_params_section(path: str | Path, section: str) -> dict[str, Any]:
    """Read ``section`` of a YAML params file (a missing file or section is an error)."""
    data = read_yaml_mapping(path)
    if section not in data:
        raise UserError(f"params file {path} has no '{section}:' section; add one or drop --params")
    body = data[section] or {}
    if not isinstance(body, dict):
        raise UserError(f"{path}: '{section}:' must be a mapping of settings")
    return body


def resolve(cls, section: str, args: argparse.Namespace, base: list[tuple[dict[str, Any], Any]] | None = None):
    """Defaults < ``base`` layers < params file section < command-line flags, merged first and then checked once."""
    layers: list[tuple[dict[str, Any], Any]] = list(base or [])
    if getattr(args, "params", None):
        layers.append((read_params_section(args.params, section), f"{args.params}: {section}"))
    flags = {f.name: getattr(args, f.name) for f, _t in fields(cls) if getattr(args, f.name, None) is not None}
    layers.append((flags, None))
    return build(cls, layers)


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def fingerprint_fields(cfg) -> dict[str, Any]:
    """The settings that determine a run's results (metadata ``fingerprint`` not False)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.metadata.get("fingerprint", True)}


def fingerprint(cfg) -> str:
    blob = json.dumps(fingerprint_fields(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprint dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        before, now = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if before != now:
            out.append(f"{flag(key)} was {bounded(before)} in the checkpoint, now {bounded(now)}")
    return out
