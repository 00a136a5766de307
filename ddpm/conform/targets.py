"""What ``ddpm conform`` holds to the specs: ``module:Class`` loaded, built from ``--config``.

A target is trusted library code (no sandbox, unlike ``ddpm verify``), but every way it can refuse is
turned into one line that names the value and what was expected (:class:`TargetError`): a module that
is not installed ("needs diffusers"), a name the module lacks, a class that is no scheduler, a config
key the constructor does not take, a value it rejects.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TargetError",
    "Factory",
    "load",
    "parse_config",
    "parse_steps",
    "factory_of",
    "first_line",
    "raised",
    "parameters",
]

# A scheduler has these (the diffusers scheduler interface, read from what the object offers).
SCHEDULER_METHODS = ("set_timesteps", "step")
# step's arguments that the probes set themselves: not the user's to configure
PROBE_ARGUMENTS = {"model_output", "timestep", "sample", "generator", "return_dict", "variance_noise"}


class TargetError(ValueError):
    """The target cannot be checked; the message is one line naming the value and what was expected."""


def load(target: str) -> Any:
    """The object that ``module:Name`` (or ``module:Outer.Name``) names; the current directory importable."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise TargetError(f"TARGET must be module:Class (e.g. diffusers:DDIMScheduler), got {target!r}")
    module_name, attr = target.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = (e.name or module_name).split(".")[0]
        raise TargetError(f"needs {missing}: cannot import {module_name!r} ({e})") from None
    except Exception as e:  # the library's own import failing: one line, no traceback
        raise TargetError(
            f"importing {module_name!r} raised {type(e).__name__}: {first_line(e, type(e).__name__)}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no {attr!r} (TARGET must name a scheduler class)") from None
        except Exception as e:  # lazy modules (diffusers) import on attribute access
            raise TargetError(
                f"loading {target!r} raised {type(e).__name__}: {first_line(e, type(e).__name__)}"
            ) from None
    return obj


def first_line(e: BaseException, empty: str = "") -> str:
    """The first line of an exception's message (``empty`` when it has none): a report stays one line."""
    text = str(e).strip().splitlines()
    return text[0] if text else empty


def raised(e: BaseException) -> str:
    """'raised ValueError: its first line', how a spec names the library's own exception."""
    return f"raised {type(e).__name__}: {first_line(e)}"


def parse_config(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict; VALUE a Python literal, or a bare word taken as a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise TargetError(f"--config takes KEY=VALUE (e.g. beta_schedule='linear'), got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            if not text.strip().isidentifier():
                raise TargetError(
                    f"--config {key}: {text!r} is not a Python literal (a number, 'text', True)"
                ) from None
            value = text.strip()
        out[key] = value
    return out


def parse_steps(text: str) -> tuple[int, ...]:
    """``N[,N...]``: step counts, each an integer >= 1."""
    counts = []
    for part in str(text).split(","):
        try:
            n = int(part)
        except ValueError:
            raise TargetError(f"--steps takes integers >= 1 separated by commas, got {text!r}") from None
        if n < 1:
            raise TargetError(f"--steps takes integers >= 1 separated by commas, got {n} in {text!r}")
        counts.append(n)
    return tuple(dict.fromkeys(counts))


@dataclass
class Factory:
    """Builds instances of a scheduler class: constructor config, and the keyword arguments of ``step``.

    ``config`` keys the constructor takes go to it; keys only ``step`` takes (DDIM's ``eta``) are
    passed to every ``step`` call. ``make(**overrides)`` builds one more (the parameterisation spec
    builds the same scheduler with another ``prediction_type``).
    """

    cls: Callable[..., Any]
    config: dict[str, Any] = field(default_factory=dict)
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def make(self, **overrides: Any) -> Any:
        config = {**self.config, **overrides}
        try:
            return self.cls(**config)
        except Exception as e:
            what = ", ".join(f"{k}={v!r}" for k, v in config.items()) or "its defaults"
            raise TargetError(
                f"{self.name} rejected {what}: {type(e).__name__}: {first_line(e, type(e).__name__)}"
            ) from None

    @property
    def label(self) -> str:
        items = {**self.config, **self.step_kwargs}
        return self.name + (" " + " ".join(f"{k}={v!r}" for k, v in items.items()) if items else "")


def parameters(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The names ``fn`` takes as keywords (less ``self``), and whether it takes any (``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self"}, any(p.kind is p.VAR_KEYWORD for p in params)


def factory_of(obj: Any, config: Mapping[str, Any] | None = None, name: str = "") -> Factory:
    """A :class:`Factory` for a scheduler class and a config, each key checked against its signatures.

    Raises :class:`TargetError` if ``obj`` is not a class offering ``set_timesteps`` and ``step``, if a
    key is taken by neither the constructor nor ``step``, or if the constructor rejects the config.
    """
    name = name or getattr(obj, "__qualname__", repr(obj))
    probe = obj
    if callable(obj) and not inspect.isclass(obj):  # a factory function: what it builds is the scheduler
        try:
            probe = obj(**dict(config or {}))
        except Exception as e:
            raise TargetError(f"{name} raised {type(e).__name__}: {first_line(e, type(e).__name__)}") from None
    if not callable(obj) or not all(callable(getattr(probe, m, None)) for m in SCHEDULER_METHODS):
        kind = "a class" if inspect.isclass(obj) else type(obj).__name__
        raise TargetError(
            f"{name} is {kind} without set_timesteps(n) and step(model_output, timestep, sample): "
            "expected a scheduler class (e.g. diffusers:DDIMScheduler)"
        )
    config = dict(config or {})
    init_names, init_any = parameters(obj.__init__ if inspect.isclass(obj) else obj)
    step_names, _ = parameters(probe.step)
    ctor, step = {}, {}
    step_names -= PROBE_ARGUMENTS
    for key, value in config.items():
        if key in init_names or (init_any and key not in step_names):
            ctor[key] = value
        elif key in step_names:
            step[key] = value
        else:
            known = ", ".join(sorted(init_names | step_names))
            raise TargetError(f"{name} takes no config key {key!r} (it takes: {known})")
    factory = Factory(obj, ctor, step, name)
    factory.make()  # a value the class rejects: one line now, not a traceback later
    return factory
