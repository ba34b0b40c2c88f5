"""Dotted job keys ("model.l2") in nested TOML tables: what the estimators read and write of a job."""
from __future__ import annotations

MISSING = object()  # a key the table does not hold


def get(table: dict, key: str):
    node = table
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def set_key(table: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = table
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def pop(table: dict, key: str):
    *parents, last = key.split(".")
    node = table
    for part in parents:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node.pop(last, MISSING) if isinstance(node, dict) else MISSING


def without_defaults(table: dict, defaults: dict) -> dict:
    out = {}
    for key, value in table.items():
        default = defaults.get(key, MISSING)
        if isinstance(value, dict):
            out[key] = without_defaults(value, default if isinstance(default, dict) else {})
        elif value != default or key in ("kind", "train", "name"):
            out[key] = value
    return out


def prune(table: dict) -> dict:
    """Drop tables left empty."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = prune(value)
            if not value:
                continue
        out[key] = value
    return out
