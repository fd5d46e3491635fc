"""handgrad.scalar: a scalar autograd engine, a scalar MLP, graph drawing and backward traces.

The network written with plain loops is in ``handgrad.scalar.loops``; the worked examples that
use the engine (scalar-graph, scalar-net, scalar-train) are experiments, in
``handgrad.experiments.scalar``.
"""

from handgrad.scalar.engine import Value, paused_gc, topological_order, vsum
from handgrad.scalar.graph import BackwardStep, BackwardTrace, draw_graph, to_dot, trace_backward
from handgrad.scalar.nn import ACTIVATIONS, MLP, Layer, Neuron, cross_entropy, softmax

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "BackwardStep",
    "BackwardTrace",
    "Layer",
    "Neuron",
    "Value",
    "cross_entropy",
    "draw_graph",
    "paused_gc",
    "softmax",
    "to_dot",
    "topological_order",
    "trace_backward",
    "vsum",
]
