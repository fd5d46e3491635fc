"""PyTorch parity: the same weights, input and upstream gradient through both, in float64.

torch is imported inside :func:`compare_with_torch` only, so ``handgrad.check`` works without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.check._adapter import (
    AnalyticPass,
    ParamsSpec,
    Session,
    check_tolerances,
    describe,
)
from handgrad.check.report import GradcheckReport, TensorCheck, compare_arrays

__all__ = ["compare_with_torch"]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "compare_with_torch needs PyTorch: pip install 'handgrad[torch]'"
        ) from None
    return torch


@contextmanager
def _dtype_and_grads_kept(torch: Any, torch_module: Any) -> Iterator[None]:
    """``torch_module`` keeps the weights it is given, but gets its dtype and ``.grad`` back."""
    params = dict(torch_module.named_parameters())
    dtype = next(iter(params.values())).dtype if params else None
    grads = {n: p.grad for n, p in params.items()}
    try:
        yield
    finally:
        if dtype is not None and dtype != torch.float64:
            torch_module.to(dtype)
        for n, p in torch_module.named_parameters():
            p.grad = grads.get(n)


def _floating_buffers(module: Any) -> dict[str, np.ndarray]:
    if not callable(getattr(module, "named_buffers", None)):
        return {}
    return {
        name: np.array(b, copy=True)
        for name, b in module.named_buffers()
        if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating)
    }


def _load_into_torch(torch: Any, torch_module: Any, session: Session) -> None:
    """Match parameters by name and shape; give torch the module's weights, buffers and mode."""
    who, torch_name = session.who, type(torch_module).__name__
    ours = {r.name: r for r in session.params}
    t_params = dict(torch_module.named_parameters())
    missing = [n for n in t_params if n not in ours]
    unexpected = [n for n in ours if n not in t_params]
    if missing or unexpected:
        raise ValueError(
            f"{who}: parameter names differ from torch {torch_name}: "
            f"torch has {missing} that the module lacks, the module has {unexpected} "
            "that torch lacks"
        )
    for n, p in t_params.items():
        if tuple(p.shape) != ours[n].data().shape:
            raise ValueError(
                f"{who}: '{n}' has shape {ours[n].data().shape}, "
                f"torch {torch_name} has {tuple(p.shape)}"
            )
    torch_module.double()
    buffers = _floating_buffers(session.module)
    with torch.no_grad():
        for n, p in torch_module.named_parameters():
            p.copy_(torch.from_numpy(np.array(ours[n].data(), copy=True)))
            p.grad = None
        for n, b in torch_module.named_buffers():
            if n in buffers and tuple(b.shape) == buffers[n].shape:
                b.copy_(torch.from_numpy(buffers[n]))
    if hasattr(session.module, "training"):
        torch_module.train(bool(session.module.training))


def _torch_pass(
    torch: Any, torch_module: Any, session: Session, ours: AnalyticPass
) -> tuple[Any, Any]:
    """torch's output (or loss) and input gradient, for the same input and upstream gradient."""
    xt = torch.tensor(session.x, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        if session.is_loss:
            tt = torch.from_numpy(session.target)
            if not torch.is_floating_point(tt):
                tt = tt.long()
            ot = torch_module(xt, tt)
            ot.backward()
        else:
            ot = torch_module(xt)
            if tuple(ot.shape) != ours.out.shape:
                raise ValueError(
                    f"{session.who}: output shape {ours.out.shape} differs from torch "
                    f"{type(torch_module).__name__}'s {tuple(ot.shape)}"
                )
            ot.backward(torch.from_numpy(ours.grad_out))
    return ot, xt.grad


def _numpy(t: Any, like: np.ndarray) -> np.ndarray:
    if t is None:  # torch leaves .grad None for a parameter that was not used
        return np.zeros_like(like)
    return t.detach().cpu().numpy().reshape(like.shape)


def compare_with_torch(
    module: Any,
    torch_module: Any,
    x: Any,
    target: Any = None,
    *,
    seed: RNGLike = 0,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    params: ParamsSpec = True,
) -> GradcheckReport:
    """Compare ``module`` with the equivalent ``torch.nn.Module``: outputs and every gradient.

    Both run in float64. ``module``'s parameters (and the buffers whose names both have, e.g.
    ``running_mean``) are copied into ``torch_module`` by PyTorch name, so it must have the
    same parameter names and shapes; its train/eval mode is set to ``module.training``.
    For a layer, both get the same input and the same upstream gradient ``R`` (standard normal
    from ``seed``); for a loss (``target`` given), ``value = module(x, target)`` and
    ``backward()`` are compared with ``torch_module(x, target).backward()``.

    Rows: ``'output'`` (or ``'loss'``), ``'input'`` (the input gradient), each parameter's
    gradient by dotted name, and each floating buffer both have, compared after the forward
    (BatchNorm's running statistics). The column ``torch`` holds PyTorch's value. An element
    passes when ``|ours - torch| <= atol + rtol * |torch|``; the defaults allow float64
    rounding in a different order of operations and nothing more.

    Afterwards ``module`` is restored as by :func:`gradcheck`; ``torch_module`` keeps
    ``module``'s weights but gets its dtype and ``.grad`` back.

    Examples:
        >>> import torch
        >>> from handgrad.check import compare_with_torch
        >>> layer, twin = nn.Linear(3, 2, rng=0), torch.nn.Linear(3, 2)
        >>> report = compare_with_torch(layer, twin, np.ones((4, 3)))
        >>> report.passed, [row.name for row in report]
        (True, ['output', 'input', 'weight', 'bias'])

        A loss takes its target as the fourth argument (here class indices):

        >>> loss, twin = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
        >>> print(compare_with_torch(loss, twin, np.eye(2, 3), np.array([0, 2])).verdict())
        PASSED: 2 tensors, 7 elements agree
    """
    torch = _import_torch()
    who = f"compare_with_torch({describe(module)})"
    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(
            f"{who}: torch_module must be a torch.nn.Module, got {type(torch_module).__name__}"
        )
    check_tolerances("compare_with_torch", atol=atol, rtol=rtol)
    session = Session(module, x, target, params, who)
    rng = as_rng(seed)
    torch_name = type(torch_module).__name__
    with _dtype_and_grads_kept(torch, torch_module), session:
        _load_into_torch(torch, torch_module, session)
        ours = session.analytic(rng, finite=False)
        buffers = _floating_buffers(module)  # after the forward: running statistics moved
        t_out, t_grad = _torch_pass(torch, torch_module, session, ours)

        def row(name: str, kind: str, ours_arr: np.ndarray, theirs: Any) -> TensorCheck:
            return compare_arrays(
                name, kind, ours_arr, _numpy(theirs, ours_arr), atol=atol, rtol=rtol
            )

        kind = "loss" if session.is_loss else "output"
        rows = [row(kind, kind, ours.out, t_out), row("input", "input", ours.input_grad, t_grad)]
        t_params = dict(torch_module.named_parameters())
        for r, g in zip(session.params, ours.param_grads, strict=True):
            rows.append(row(r.name, "param", g, t_params[r.name].grad))
        for n, b in torch_module.named_buffers():
            if n in buffers and tuple(b.shape) == buffers[n].shape:
                rows.append(row(n, "buffer", buffers[n], b))
    return GradcheckReport(
        module=f"{describe(module)} vs torch {torch_name}",
        rows=rows,
        method="PyTorch parity (float64)",
        reference="torch",
        eps=None,
        atol=atol,
        rtol=rtol,
    )
