"""Strict parsing of settings from environment variables.

A bad value stops the process at start with a message naming the variable,
what was given and what is accepted (healthchecks style), instead of running
with a surprising default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value if value != "" else None


def env_str(name: str, default: str | None = None, *, choices: Sequence[str] | None = None) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    if choices is not None and value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _env_number(name: str, default: T, cast: Callable[[str], T], kind: str, minimum=None, maximum=None) -> T:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at most {maximum}")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    return _env_number(name, default, int, "an integer", minimum, maximum)


def env_float(name: str, default: float | None, *, minimum: float | None = None, maximum: float | None = None) -> float:
    return _env_number(name, default, float, "a number", minimum, maximum)


def env_list(name: str, default: Sequence[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


# "100/min", "5/hour": what DRF's throttles accept (a count, then a period whose
# first letter is s, m, h or d).
_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def env_rate(name: str, default: str) -> str:
    """A throttle rate ``N/period`` (period: s, sec, second, m, min, minute, h, hour, d, day)."""
    value = _raw(name)
    if value is None:
        return default
    count, slash, period = value.partition("/")
    if not (slash and count.isdigit() and int(count) > 0 and period in _RATE_PERIODS):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use a positive count, '/', and one of {', '.join(_RATE_PERIODS)} "
            "(e.g. 60/min)"
        )
    return value


def env_name(name: str, default: str, *, choices: Sequence[str] | None = None) -> str:
    """A short identifier (a queue name and the like): letters, digits, '.', '_' and '-' only."""
    value = env_str(name, default, choices=choices)
    if not value or len(value) > 64 or not all(ch.isalnum() or ch in "._-" for ch in value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a name (letters, digits, '.', '_', '-'; at most 64)")
    return value
