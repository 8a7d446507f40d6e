"""Load a user's object named on the command line: ``FILE.py:NAME`` or ``MODULE:NAME``.

``wayout check --design``, ``--config`` and ``wayout diagrams --spec`` take a
reference to something of the user's. A reference whose left part ends in
``.py`` or contains a path separator is a file: it is loaded by its path under
a module name of its own (``_wayout_user_<hash>``), so a package of the user's
that shares a name with one of wayout's (``models``, ``fsm``) never shadows
wayout's, and the file's directory is appended to ``sys.path`` (after
wayout's packages) so that it can import its own helper modules. Otherwise the
left part is a module imported the ordinary way.

Every failure is a ``LoadError`` (a ``WayoutError``): one line saying what was
wrong with which reference and what to do.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fsm.errors import WayoutError

#: wayout's own top-level packages: a user's package of the same name collides.
WAYOUT_PACKAGES = ("fsm", "models", "runtime")


class LoadError(WayoutError):
    """A ``FILE.py:NAME`` or ``MODULE:NAME`` reference that names no usable object."""


class WrongKind(LoadError):
    """The reference names an object of the wrong kind (not a Design, PoolConfig, spec)."""


class BadParameter(LoadError):
    """A ``--param NAME=VALUE`` the design's constructor does not take, or cannot convert."""


def split(ref: str, option: str) -> tuple[str, str]:
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise LoadError(f"{option} {ref!r}: expected FILE.py:NAME or MODULE:NAME "
                        "(e.g. designs/pool.py:MyPool or mypkg.design:MyPool)")
    return where, attr


def load(ref: str, option: str) -> Any:
    """The object ``ref`` names; ``option`` is the flag it came with, for messages."""
    where, attr = split(ref, option)
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(Path(where), ref, option)
    else:
        module = _import(where, ref, option)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = sorted(n for n in vars(module) if not n.startswith("_"))
            raise LoadError(f"{option} {ref!r}: {where} has no {attr!r} (it defines: "
                            f"{', '.join(names) or 'nothing public'})") from None
    return obj


def _load_file(path: Path, ref: str, option: str) -> types.ModuleType:
    if not path.is_file():
        raise LoadError(f"{option} {ref!r}: no file {path} (relative paths are taken from "
                        f"{Path.cwd()})")
    resolved = path.resolve()
    name = "_wayout_user_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    # wayout's own packages first, so that the file's `import models.design` is ours
    # even when a `models/` package of the user's sits next to it.
    for pkg in WAYOUT_PACKAGES:
        importlib.import_module(pkg)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise LoadError(f"{option} {ref!r}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        raise _import_failure(exc, ref, option, str(path)) from exc
    return module


def _import(module: str, ref: str, option: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except BaseException as exc:
        raise _import_failure(exc, ref, option, module) from exc


def _import_failure(exc: BaseException, ref: str, option: str, what: str) -> LoadError:
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        root = exc.name.split(".")[0]
        if root in WAYOUT_PACKAGES and exc.name != root:
            return LoadError(
                f"{option} {ref!r}: importing {what} failed: no module {exc.name!r}. "
                f"{root!r} is wayout's package; a package of yours named {root!r} cannot be "
                "imported next to it: reach it under another name (see models/README.md, "
                "\"Names that collide\")")
        return LoadError(f"{option} {ref!r}: importing {what} failed: no module "
                         f"{exc.name!r} (is it installed, or on PYTHONPATH?)")
    # The innermost frame of the user's code (not wayout's, which raised a SpecError, say).
    ours = tuple(str(Path(sys.modules[p].__file__ or "").resolve().parent) + "/"
                 for p in WAYOUT_PACKAGES if p in sys.modules)
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(ours) and not filename.startswith("<frozen"):
            where = f" at {filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return LoadError(f"{option} {ref!r}: importing {what} raised "
                     f"{type(exc).__name__}: {exc}{where}")


# ----------------------------------------------------------------------------
# Parameters of a design
# ----------------------------------------------------------------------------


def parameters_of(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``cls(...)`` takes (its ``__init__``, dataclass fields too)."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in sig.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def instantiate(cls: type, pairs: Sequence[str], option: str = "--param") -> Any:
    """``cls(**params)``, each ``NAME=VALUE`` of ``pairs`` typed from the constructor."""
    params = parameters_of(cls)
    try:
        init = next(vars(c)["__init__"] for c in cls.__mro__ if "__init__" in vars(c))
        hints = typing.get_type_hints(init)
    except Exception:
        hints = {}
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadParameter(f"{option} {pair!r}: expected NAME=VALUE")
        if name not in params:
            raise BadParameter(f"{option} {pair!r}: {cls.__name__} takes no parameter "
                               f"{name!r}; it takes: {_describe(params, hints)}")
        kwargs[name] = _convert(text, name, params[name], hints.get(name), cls, option)
    try:
        return cls(**kwargs)
    except WayoutError:
        raise
    except Exception as exc:
        raise BadParameter(f"{cls.__name__}({_show(kwargs)}) raised {type(exc).__name__}: "
                           f"{exc}; its parameters: {_describe(params, hints)}") from None


def _show(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _describe(params: Mapping[str, inspect.Parameter], hints: Mapping[str, Any]) -> str:
    if not params:
        return "nothing"
    out = []
    for name, p in params.items():
        kind = _type_name(hints.get(name, p.annotation))
        default = "" if p.default is p.empty else f"={p.default!r}"
        out.append(f"{name}{': ' + kind if kind else ''}{default}")
    return ", ".join(out)


def _type_name(t: Any) -> str:
    if t is inspect.Parameter.empty or t is None:
        return ""
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def _convert(text: str, name: str, param: inspect.Parameter, hint: Any, cls: type,
             option: str) -> Any:
    kinds = _scalar_kinds(hint if hint is not None else param.annotation)
    if not kinds and param.default is not param.empty and param.default is not None:
        kinds = [type(param.default)]
    if text.strip().lower() == "none" and (type(None) in kinds or param.default is None):
        return None
    kinds = [k for k in kinds if k is not type(None)]
    for kind in kinds:
        try:
            if kind is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                continue
            if kind in (int, float, str):
                return kind(text)
        except ValueError:
            continue
    if kinds:
        want = " or ".join(k.__name__ for k in kinds)
        raise BadParameter(f"{option} {name}={text!r}: {cls.__name__}'s {name} is {want}, "
                           f"and {text!r} is not one")
    try:  # unannotated, no default: a Python literal, else the text itself
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _scalar_kinds(t: Any) -> list[type]:
    if t is inspect.Parameter.empty or t is None:
        return []
    if isinstance(t, str):
        return [k for k in (bool, int, float, str) if k.__name__ in t] + (
            [type(None)] if "None" in t else [])
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for a in typing.get_args(t):
            out += _scalar_kinds(a) if a is not type(None) else [type(None)]
        return out
    if t in (bool, int, float, str):
        return [t]
    return []
