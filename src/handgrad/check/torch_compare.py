"""PyTorch parity: the same weights, input and upstream gradient through both, in float64.

torch is imported inside :func:`compare_with_torch` only, so ``handgrad.check`` works without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.check._adapter import ParamsSpec, Session, describe
from handgrad.check.gradcheck import (
    _as_input,
    _as_target,
    _input_grad,
    _is_real,
    _output,
    _scalar,
)
from handgrad.check.report import GradcheckReport, TensorCheck, compare_arrays

__all__ = ["compare_with_torch"]


def _floating_buffers(module: Any) -> dict[str, np.ndarray]:
    if not callable(getattr(module, "named_buffers", None)):
        return {}
    return {
        name: np.array(b, copy=True)
        for name, b in module.named_buffers()
        if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating)
    }


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
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "compare_with_torch needs PyTorch: pip install 'handgrad[torch]'"
        ) from None

    who = f"compare_with_torch({describe(module)})"
    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(
            f"{who}: torch_module must be a torch.nn.Module, got {type(torch_module).__name__}"
        )
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not (_is_real(value) and value >= 0):
            raise ValueError(f"compare_with_torch: invalid {name} {value!r}, must be >= 0")
    session = Session(module, params, who)
    x64 = _as_input(x, who)
    loss_mode = target is not None
    tgt = _as_target(target) if loss_mode else None
    rng = as_rng(seed)
    torch_name = type(torch_module).__name__

    t_params = dict(torch_module.named_parameters())
    t_dtype = next(iter(t_params.values())).dtype if t_params else None
    t_grads = {n: p.grad for n, p in t_params.items()}
    try:
        with session:
            ours = {r.name: r for r in session.params}
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
            buffers = _floating_buffers(module)
            with torch.no_grad():
                for n, p in torch_module.named_parameters():
                    p.copy_(torch.from_numpy(np.array(ours[n].data(), copy=True)))
                    p.grad = None
                for n, b in torch_module.named_buffers():
                    if n in buffers and tuple(b.shape) == buffers[n].shape:
                        b.copy_(torch.from_numpy(buffers[n]))
            if hasattr(module, "training"):
                torch_module.train(bool(module.training))

            # -- handgrad ------------------------------------------------------------------------
            session.zero_grads()
            fwd = session.forward
            if loss_mode:
                out = np.array(_scalar(fwd(x64.copy(), tgt), who))
                g_in = _input_grad(session.module.backward(), x64.shape, who)
            else:
                out = _output(fwd(x64.copy()), who)
                R = rng.standard_normal(out.shape)
                g_in = _input_grad(session.module.backward(R.copy()), x64.shape, who)
            g_params = {r.name: session.read_grad(r) for r in session.params}
            buffers_after = _floating_buffers(module)

            # -- torch ---------------------------------------------------------------------------
            xt = torch.tensor(x64, dtype=torch.float64, requires_grad=True)
            with torch.enable_grad():
                if loss_mode:
                    tt = torch.from_numpy(tgt)
                    if not torch.is_floating_point(tt):
                        tt = tt.long()
                    ot = torch_module(xt, tt)
                    ot.backward()
                else:
                    ot = torch_module(xt)
                    if tuple(ot.shape) != out.shape:
                        raise ValueError(
                            f"{who}: output shape {out.shape} differs from torch {torch_name}'s "
                            f"{tuple(ot.shape)}"
                        )
                    ot.backward(torch.from_numpy(R))

            def as_np(t: Any, like: np.ndarray) -> np.ndarray:
                if t is None:  # torch leaves .grad None for a parameter that was not used
                    return np.zeros_like(like)
                return t.detach().cpu().numpy().reshape(like.shape)

            kw: dict[str, Any] = dict(atol=atol, rtol=rtol)
            rows: list[TensorCheck] = [
                compare_arrays(
                    "loss" if loss_mode else "output",
                    "loss" if loss_mode else "output",
                    out,
                    as_np(ot, out),
                    **kw,
                ),
                compare_arrays("input", "input", g_in, as_np(xt.grad, g_in), **kw),
            ]
            t_after = dict(torch_module.named_parameters())
            for r in session.params:
                g = g_params[r.name]
                t_grad = as_np(t_after[r.name].grad, g)
                rows.append(compare_arrays(r.name, "param", g, t_grad, **kw))
            for n, b in torch_module.named_buffers():
                if n in buffers_after and tuple(b.shape) == buffers_after[n].shape:
                    ours_b = buffers_after[n]
                    rows.append(compare_arrays(n, "buffer", ours_b, as_np(b, ours_b), **kw))

    finally:
        # torch_module: back to its dtype and its previous gradients
        if t_dtype is not None and t_dtype != torch.float64:
            torch_module.to(t_dtype)
        for n, p in torch_module.named_parameters():
            p.grad = t_grads.get(n)
    return GradcheckReport(
        module=f"{describe(module)} vs torch {torch_name}",
        rows=rows,
        method="PyTorch parity (float64)",
        reference="torch",
        eps=None,
        atol=atol,
        rtol=rtol,
    )
