"""Load the model a user names: a zoo name, `path/file.py:factory`, or a saved `torch.export` program (.pt2)."""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgefit import models
from edgefit.errors import UserError


@dataclass
class LoadedModel:
    module: nn.Module | torch.export.ExportedProgram
    example_inputs: tuple[torch.Tensor, ...]
    name: str
    split_after: str | None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 240:  # some torch errors are whole paragraphs; the start says what went wrong
        text = text[:237] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _as_inputs(value: object, where: str) -> tuple[torch.Tensor, ...]:
    if callable(value) and not isinstance(value, torch.Tensor):
        value = value()
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, list | tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    raise UserError(f"{where} must give a tensor or a tuple of tensors, got {type(value).__name__}")


def _import_file(path: Path) -> object:
    # A unique module name per file so two user files called model.py do not clash in sys.modules.
    name = f"edgefit_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise UserError(f"importing {path} failed: {_one_line(e)}") from e
    return module


def _from_python(spec: str, kwargs: dict) -> LoadedModel:
    file, _, factory_name = spec.rpartition(":")
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"model file {file} does not exist")
    if not factory_name.isidentifier():
        raise UserError(f"{spec!r}: after ':' give the name of a function in {file} that returns the model")
    mod = _import_file(path)
    factory = getattr(mod, factory_name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(mod).items() if callable(v) and not k.startswith("_"))[:6]
        raise UserError(
            f"{file} has no function {factory_name!r}; it defines: {', '.join(found) or 'nothing callable'}"
        )
    try:
        module = factory(**kwargs)
    except Exception as e:
        raise UserError(f"{spec} raised {_one_line(e)}") from e
    if not isinstance(module, nn.Module):
        raise UserError(f"{spec} returned {type(module).__name__}, not a torch.nn.Module")
    if callable(getattr(mod, "example_inputs", None)):
        try:
            inputs = _as_inputs(mod.example_inputs, f"{file}: example_inputs()")
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{file}: example_inputs() raised {_one_line(e)}") from e
    elif getattr(module, "example_input", None) is not None:
        inputs = _as_inputs(module.example_input, f"{spec}: the model's example_input")
    else:
        raise UserError(
            f"{file} gives no example input: define a module-level example_inputs() returning a tensor "
            "(or tuple of tensors), or set an example_input attribute on the model"
        )
    return LoadedModel(module.eval(), inputs, factory_name, getattr(module, "split_after", None))


def _from_export(path: Path) -> LoadedModel:
    if not path.is_file():
        raise UserError(f"exported program {path} does not exist")
    if not zipfile.is_zipfile(path):  # checked first: torch.export.load logs a warning before raising
        raise UserError(f"cannot load exported program {path}: not a torch.export.save archive")
    try:
        program = torch.export.load(path)
    except Exception as e:
        raise UserError(f"cannot load exported program {path}: {_one_line(e)}") from e
    args, kwargs = program.example_inputs or ((), {})
    if kwargs or not args:
        raise UserError(f"{path} was saved without positional example inputs; export with example args")
    return LoadedModel(program, tuple(args), path.stem, None)


def load_state_dict_checked(module: nn.Module, weights: str | Path) -> None:
    """Load a local state-dict file into `module`; any key or shape mismatch is a one-line UserError."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"weights file {weights} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot read weights {weights} as a state dict: {_one_line(e)}") from e
    # Training checkpoints often nest the weights one level down.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{weights} is not a state dict (a mapping of names to tensors)")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label} {len(items)}: {', '.join(items[:3])}{more}")
    if problems:
        raise UserError(f"weights {weights} do not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state)


def load_model(spec: str, weights: str | None = None, **kwargs: object) -> LoadedModel:
    """Resolve `spec` to a model and its example inputs; `weights` is a local state-dict file."""
    if spec in models.ZOO:
        module = models.create(spec, **kwargs)
        loaded = LoadedModel(
            module, (models.example_input(spec),), spec, getattr(module, "split_after", None)
        )
    elif spec.endswith(".pt2"):
        if weights is not None or kwargs:
            raise UserError("an exported program (.pt2) carries its own weights; drop the weights/options")
        return _from_export(Path(spec).expanduser())
    elif ".py:" in spec:
        loaded = _from_python(spec, dict(kwargs))
    elif spec.endswith(".py"):
        raise UserError(f"{spec}: name the function that builds the model, as {spec}:FUNCTION")
    else:
        close = difflib.get_close_matches(spec, models.ZOO, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"unknown model {spec!r}{hint}; give a zoo name ({', '.join(models.ZOO)}), "
            "path/file.py:FUNCTION or an exported program file.pt2"
        )
    if weights is not None:
        load_state_dict_checked(loaded.module, weights)
        loaded.module.eval()
    return loaded
