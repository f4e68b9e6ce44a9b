"""Numbers read from LWM_* environment variables, with errors that name the variable."""

from __future__ import annotations

import os


def env_int(variable: str, default: int, minimum: int | None = None) -> int:
    """The integer in `variable`, or `default` when it is unset or empty."""
    return int(_env_number(variable, default, int, minimum))


def env_float(variable: str, default: float, minimum: float | None = None) -> float:
    """The number in `variable`, or `default` when it is unset or empty."""
    return _env_number(variable, default, float, minimum)


def _env_number(variable: str, default: float, kind: type[int] | type[float], minimum: float | None) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        number = kind(text)
    except ValueError:
        raise ValueError(f"{variable} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{variable} must be at least {minimum}, got {text!r}")
    return number
