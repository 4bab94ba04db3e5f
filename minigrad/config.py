"""The machinery of checked configs, for any schema: typed keys, every problem of a file reported at once.

A schema is a dict of :class:`Key` (type, default, meaning, bounds). The schemas themselves live beside
their readers: the ``model:`` section's in ``nn/config.py`` (next to the models it builds), the
``trainer:`` section's in ``train.py`` (next to the loop that reads it). This module only knows how to
read YAML safely, coerce a value to its key's type, suggest a near key name, and collect problems:

    problems = Problems("run.yaml")
    value = problems.coerce("model.hidden_size", MODEL_KEYS["hidden_size"], raw)   # None if it is wrong
    problems.raise_if_any()         # one ConfigError naming every problem found

so a user with seven mistakes in a file sees all seven in one run, each naming the file and the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config: the message names the file, the key and what is wrong (every problem at once)."""


@dataclass(frozen=True)
class Key:
    """One config key: kind is 'int', 'float', 'bool', 'str', 'ints' (list of int) or 'floats'."""

    kind: str
    default: Any
    doc: str
    nullable: bool = False
    minimum: float | None = None  # inclusive
    choices: tuple | None = None
    length: int | None = None     # for lists of fixed length (betas)


_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def suggest(word: str, options, exclude_prefixes: tuple[str, ...] = ()) -> str:
    """'; did you mean X?' for the closest of ``options``, or ''. Options starting with one of
    ``exclude_prefixes`` are never suggested (a Mamba1 key must not be pointed at a Mamba2 one)."""
    pool = [o for o in options if not str(o).startswith(exclude_prefixes)]
    near = difflib.get_close_matches(str(word), pool, n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def coerce(label: str, key: Key, value: Any) -> Any:
    """``value`` checked against ``key``'s type and bounds, in canonical form; raises ConfigError
    with 'LABEL must be ...' (the caller adds the file name)."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{label} must be {expected}, got {value!r}")

    if value is None:
        if key.nullable:
            return [] if key.kind == "ints" else None
        raise bad("set (it cannot be null)")
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif key.kind == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)  # PyYAML reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("a finite number")
    elif key.kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key.kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif key.kind in ("ints", "floats"):
        scalar = Key(key.kind[:-1], None, "")
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        value = [coerce(f"{label}[{i}]", scalar, v) for i, v in enumerate(value)]
        if key.length is not None and len(value) != key.length:
            raise bad(f"a list of {key.length} numbers")
    if key.minimum is not None and key.kind in ("int", "float") and value < key.minimum:
        raise ConfigError(f"{label} must be at least {key.minimum:g}, got {value!r}")
    if key.choices is not None and value not in key.choices:
        raise ConfigError(f"{label} must be one of {', '.join(key.choices)}, got {value!r}"
                          + suggest(value, key.choices))
    return value


class Problems:
    """Collects the errors and warnings found in one config source, to report them all at once."""

    def __init__(self, source: str):
        self.source = source
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def coerce(self, label: str, key: Key, value: Any) -> Any:
        """The coerced value, or None after recording the problem (so checking goes on)."""
        try:
            return coerce(label, key, value)
        except ConfigError as e:
            self.error(str(e))
            return None

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise ConfigError(f"{self.source}: {self.errors[0]}")
        if self.errors:
            raise ConfigError(f"{self.source}: {len(self.errors)} problems:\n"
                              + "\n".join(f"  - {e}" for e in self.errors))


def merge_sources(raw: dict, schemas: dict[str, dict[str, Key]], overrides, problems: Problems,
                  hints: dict[str, Callable[[str], str]] | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """The values of each section, from a file's mapping ``raw`` and then the command-line ``overrides``
    ((key, value, origin): dotted 'trainer.seed' or bare 'seed'), unknown sections and keys recorded.
    ``hints[section](key)`` gives the did-you-mean text for an unknown key (default: the nearest key).
    Returns (values by section, origin by 'section.key' for the overridden keys)."""
    hints = hints or {}

    def unknown(section: str, key: str) -> str:
        hint = hints.get(section, lambda k: suggest(k, schemas[section]))
        return f"unknown key {section}.{key}" + hint(str(key))

    values: dict[str, dict[str, Any]] = {s: {} for s in schemas}
    for section, body in raw.items():
        if section not in schemas:
            names = " and ".join(f"'{s}:'" for s in schemas)
            problems.error(f"unknown section {section!r}" + suggest(section, schemas) + f" (a config has {names})")
        elif isinstance(body, dict):
            for key, value in body.items():
                if key in schemas[section]:
                    values[section][key] = value
                else:
                    problems.error(unknown(section, key))
        elif body is not None:
            problems.error(f"section {section!r} must be a mapping of keys to values")
    origins: dict[str, str] = {}
    for name, value, origin in overrides:
        section, _, key = name.rpartition(".")
        owners = [section] if section else [s for s, keys in schemas.items() if key in keys]
        if section and section not in schemas:
            problems.error(f"{origin}: unknown section {section!r} in {name!r}" + suggest(section, schemas))
        elif section and key not in schemas[section]:
            problems.error(f"{origin}: " + unknown(section, key))
        elif not owners:
            every = [k for keys in schemas.values() for k in keys]
            problems.error(f"{origin}: unknown key {name!r}" + suggest(name, every))
        else:
            values[owners[0]][key] = value
            origins[f"{owners[0]}.{key}"] = origin
    return values, origins


def parse_set(item: str) -> tuple[str, Any]:
    """'key=value' from ``--set``; the value is read as YAML (so 3, 0.5, true, [1, 2] work)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value")
    name, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return name.strip(), value


def _repeated_key(node) -> str | None:
    """The first key written twice in one mapping of a composed YAML node tree (plain YAML keeps the last)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in n.value:
                key, line = getattr(key_node, "value", None), key_node.start_mark.line + 1
                if isinstance(key, str) and key in seen:
                    return f"key {key!r} appears twice (lines {seen[key]} and {line}); keep one"
                seen[key] = line
                stack.append(value_node)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return None


def read_yaml(path: str) -> dict:
    """A config file's top-level mapping, read with ``yaml.safe_load`` (repeated keys refused); every failure
    (missing, not a regular file, unreadable, not UTF-8, empty, invalid YAML) is a ConfigError."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: config file not found")
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    if not os.path.isfile(path):  # a FIFO or a device would block or never end
        raise ConfigError(f"{path}: is not a regular file, expected a YAML config file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); a config is a YAML text file") \
            from None
    try:
        repeated = _repeated_key(yaml.compose(text, Loader=yaml.SafeLoader))  # nodes only: nothing is built
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if repeated:
        raise ConfigError(f"{path}: {repeated}")
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; a config has 'model:' and 'trainer:' sections")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'model:' and 'trainer:' sections, "
                          f"got {type(raw).__name__}")
    return raw


def describe(section: str, keys: dict[str, Key]) -> str:
    """Every key of a section with its default and meaning (for --help-config)."""
    lines = [f"{section}:"]
    for name, spec in keys.items():
        lines.append(f"  {name + ':':<24} {spec.default!r:<14} # {spec.doc}")
    return "\n".join(lines)
