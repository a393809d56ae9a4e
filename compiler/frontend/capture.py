"""`capture`: nn.Module (or ExportedProgram) -> edgefit IR Graph, via torch.export.

Parameters and buffers become graph constants named by their state_dict key; a weight named in
the compression plan is stored in its encoding (after checking it still decodes to the model's
tensor). Every node records the user's source line.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.export import ExportedProgram
from torch.export.graph_signature import OutputKind

from edgefit.compiler.encodings import WeightEncoding
from edgefit.compiler.frontend import aten_ops
from edgefit.compiler.frontend.builder import Builder, Const, Padded, Unsupported
from edgefit.compiler.frontend.errors import UnsupportedOpError
from edgefit.compiler.frontend.source import location, user_frame
from edgefit.compiler.ir import Graph, verify
from edgefit.errors import UserError

# Containers hold no ops of their own: an op "in" them is written in the parent's forward.
_CONTAINERS = ("torch.nn.modules.container.",)


def capture(
    model: nn.Module | ExportedProgram,
    example_inputs: tuple[torch.Tensor, ...],
    plan: Mapping[str, WeightEncoding] | None = None,
    split_after: str | None = None,
    name: str = "model",
) -> Graph:
    """Export `model` on `example_inputs` and translate it to a verified IR graph.

    `plan` maps parameter FQNs ("layer1.0.conv1.weight") to their compressed encoding;
    `split_after` names the submodule whose output is the split-computing bottleneck
    (recorded as graph.meta["split"])."""
    plan = dict(plan or {})
    if isinstance(example_inputs, torch.Tensor):  # a lone tensor, not a tuple: tuple() would unbind it
        example_inputs = (example_inputs,)
    if isinstance(model, nn.Module):  # cheap checks first: export takes seconds
        _check_plan(plan, model.state_dict())
        if split_after is not None:
            _check_module(model, split_after)
    ep = _export(model, tuple(example_inputs))
    params = _named_tensors(ep)
    if not isinstance(model, nn.Module):
        _check_plan(plan, params)

    b = Builder(plan)
    env: dict[fx.Node, Any] = {}
    sig = ep.graph_signature
    graph_inputs: list[str] = []
    out_node = None
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            env[node] = _placeholder(b, node, sig, params, graph_inputs)
        elif node.op == "call_function":
            if not node.users:
                continue  # dead code and asserts do not reach the graph
            env[node] = _call(b, node, env)
        elif node.op == "output":
            out_node = node
        else:
            raise UnsupportedOpError(f"{node.op} {node.target}", location(node.meta.get("stack_trace")))

    outputs = _outputs(ep, out_node, env)
    unused = sorted(set(plan) - b.encoded)
    if unused:
        raise UserError(
            f"plan weight {unused[0]} is not read directly as a conv/linear weight by the exported model "
            f"({len(unused)} such); re-create the plan for this model"
        )
    meta: dict[str, Any] = {"model": name}
    if split_after is not None:
        meta["split"] = _split_tensor(ep, env, split_after)
    graph = Graph(tuple(graph_inputs), tuple(outputs), tuple(b.nodes), b.values, b.constants, meta)
    return verify(graph)


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch.export logs warnings and graph dumps to stderr when it fails on a user's model; the
    failure is reported as one line by the caller, so those logs are silenced while exporting."""
    # torch gives each sub-logger its own handler (propagate off), so only the global switch
    # reaches them all.
    # Its graph dumps are printed to sys.stderr directly, hence the redirection too.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _export(model: nn.Module | ExportedProgram, example_inputs: tuple[Any, ...]) -> ExportedProgram:
    for i, t in enumerate(example_inputs):
        if not isinstance(t, torch.Tensor):
            raise UserError(f"example input {i} is a {type(t).__name__}; capture takes a tuple of tensors")
        if t.dtype != torch.float32:
            raise UserError(f"example input {i} is {t.dtype}; edgefit graphs take float32 inputs")
    with warnings.catch_warnings(), _quiet_torch_logs():
        # torch's own pytree deprecation noise during export; nothing the user can act on.
        warnings.filterwarnings("ignore", category=FutureWarning)
        if isinstance(model, ExportedProgram):
            ep = model
        elif isinstance(model, nn.Module):
            was_training = model.training
            try:
                ep = torch.export.export(model.eval(), example_inputs, strict=False)
            except Exception as exc:  # any export failure comes from the user's model
                raise UserError(f"torch.export failed: {_first_line(exc)}") from exc
            finally:
                model.train(was_training)
        else:
            raise UserError(f"capture takes an nn.Module or ExportedProgram, not {type(model).__name__}")
        try:
            # Functional form, nothing decomposed: in-place relu_/add_ become relu/add,
            # conv2d/linear/hardswish stay whole.
            return ep.run_decompositions({})
        except Exception as exc:
            raise UserError(f"torch.export failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _named_tensors(ep: ExportedProgram) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for fqn, t in ep.state_dict.items():
        tensors[fqn] = t
    for fqn, t in ep.constants.items():  # non-persistent buffers and lifted constants
        if isinstance(t, torch.Tensor):
            tensors.setdefault(fqn, t)
    return tensors


def _check_plan(plan: Mapping[str, WeightEncoding], params: Mapping[str, torch.Tensor]) -> None:
    for fqn, enc in plan.items():
        if fqn not in params:
            close = difflib.get_close_matches(fqn, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"plan names {fqn!r}, which is not a parameter of the model{hint}")
        param = params[fqn].detach().to(torch.float32).cpu().numpy()
        if not np.array_equal(enc.to_dense(), param):
            raise UserError(
                f"plan weight {fqn} ({enc.kind}) does not decode to the model's tensor: the plan is stale "
                "(re-run compression, or load the compressed weights into the model)"
            )


def _check_module(model: nn.Module, path: str) -> None:
    names = [n for n, _ in model.named_modules() if n]
    if path not in names:
        close = difflib.get_close_matches(path, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserError(f"split_after: the model has no submodule {path!r}{hint}")


def _placeholder(
    b: Builder,
    node: fx.Node,
    sig: Any,
    params: Mapping[str, torch.Tensor],
    graph_inputs: list[str],
) -> Any:
    for mapping in (sig.inputs_to_parameters, sig.inputs_to_buffers, sig.inputs_to_lifted_tensor_constants):
        if node.name in mapping:
            fqn = mapping[node.name]
            return Const(params[fqn], fqn, fqn)
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise UserError(f"model input {node.name!r} is not a tensor; capture handles tensor inputs only")
    name = b.add_input(node.name, tuple(int(d) for d in val.shape))
    graph_inputs.append(name)
    return name


def _module_of(node: fx.Node) -> tuple[str, bool]:
    """(innermost module path, whether it is a torch.nn leaf module) from nn_module_stack."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", False
    path, kind = list(stack.values())[-1]
    path = path.split("@")[0]
    kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    leaf = kind.startswith("torch.nn.modules.") and not kind.startswith(_CONTAINERS)
    return path, leaf


def _op_name(target: Any) -> str:
    return (
        str(target) if isinstance(target, torch._ops.OpOverload) else getattr(target, "__name__", str(target))
    )


def _call(b: Builder, node: fx.Node, env: Mapping[fx.Node, Any]) -> Any:
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    trace = node.meta.get("stack_trace")
    frame = user_frame(trace)
    b.source = frame[0] if frame else ""
    b.module_path, b.leaf_module = _module_of(node)
    b.fx_name = node.name
    try:
        if node.target is aten_ops.GETITEM:
            return aten_ops.getitem(b, node, args)
        if _is_constant(args) and _is_constant(kwargs):
            return _evaluate(node, args, kwargs)
        converter = aten_ops.CONVERTERS.get(node.target)
        if converter is None:
            raise UnsupportedOpError(_op_name(node.target), location(trace))
        return converter(b, node, aten_ops.bind(node.target, args, kwargs))
    except Unsupported as exc:
        raise UnsupportedOpError(_op_name(node.target), location(trace), str(exc)) from None


def _is_constant(tree: Any) -> bool:
    """No activation in the arguments: the op can be computed at compile time."""
    if isinstance(tree, (str, Padded)):
        return False
    if isinstance(tree, (list, tuple)):
        return all(_is_constant(t) for t in tree)
    if isinstance(tree, dict):
        return all(_is_constant(t) for t in tree.values())
    return True


def _evaluate(node: fx.Node, args: Any, kwargs: Any) -> Any:
    def unwrap(t: Any) -> Any:
        return t.tensor if isinstance(t, Const) else t

    real_args = torch.utils._pytree.tree_map(unwrap, args, is_leaf=lambda t: isinstance(t, Const))
    real_kwargs = torch.utils._pytree.tree_map(unwrap, kwargs, is_leaf=lambda t: isinstance(t, Const))
    with torch.no_grad():
        try:
            result = node.target(*real_args, **real_kwargs)
        except Exception as exc:  # reported as the op the user wrote
            raise Unsupported(f"could not evaluate at compile time: {_first_line(exc)}") from exc
    if isinstance(result, torch.Tensor):
        src = args[0] if args and isinstance(args[0], Const) else None
        transposed = node.target in aten_ops.TRANSPOSES and src is not None and src.tensor.ndim == 2
        return Const(result, node.name, transpose_of=src if transposed else None)
    if isinstance(result, (tuple, list)):
        return tuple(
            Const(r, f"{node.name}_{i}") if isinstance(r, torch.Tensor) else r for i, r in enumerate(result)
        )
    return result


def _outputs(ep: ExportedProgram, out_node: fx.Node | None, env: Mapping[fx.Node, Any]) -> list[str]:
    if out_node is None:
        raise UserError("the exported program has no output")
    results = out_node.args[0]
    names = []
    for spec, arg in zip(ep.graph_signature.output_specs, results, strict=True):
        if spec.kind != OutputKind.USER_OUTPUT:
            raise UserError(
                f"the model mutates {spec.target} in forward; export it in eval mode without side effects"
            )
        sym = env.get(arg) if isinstance(arg, fx.Node) else arg
        if isinstance(sym, Const):
            raise UserError(
                f"model output {spec.arg.name!r} does not depend on the input; nothing to compile"
            )
        if not isinstance(sym, str):
            raise UserError(f"model output {spec.arg.name!r} is not a tensor an edgefit graph can produce")
        names.append(sym)
    return names


def _split_tensor(ep: ExportedProgram, env: Mapping[fx.Node, Any], path: str) -> str:
    """The IR tensor the submodule `path` hands to the rest of the model."""

    def inside(node: fx.Node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        return any(p.split("@")[0] == path or p.startswith(path + ".") for p, _ in stack.values())

    members = [n for n in ep.graph.nodes if n.op == "call_function" and n in env and inside(n)]
    if not members:
        raise UserError(f"split_after: no op of the exported model runs inside submodule {path!r}")
    leaving = {env[n] for n in members if any(u.op == "output" or not inside(u) for u in n.users)}
    leaving = {s for s in leaving if isinstance(s, str)}
    if len(leaving) > 1:
        raise UserError(
            f"split_after: submodule {path!r} has {len(leaving)} outputs; the split needs exactly one"
        )
    if leaving:
        return leaving.pop()
    last = env[members[-1]]
    if not isinstance(last, str):
        raise UserError(f"split_after: submodule {path!r} produces no activation")
    return last
