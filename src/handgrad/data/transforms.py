"""Standardisation (a mean and a standard deviation fitted on train data) and the random
augmentations a DataLoader applies to each training batch (shifts and horizontal flips)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Compose", "RandomHorizontalFlip", "RandomShift", "Standardizer", "standardize"]

_PER = ("auto", "feature", "channel", "global")


def _float(X: Any) -> np.ndarray:
    """X as a float array; float32 and float64 are kept, anything else becomes float32."""
    X = np.asarray(X)
    if X.dtype in (np.float32, np.float64):
        return X
    return X.astype(np.float32)


def standardize(X: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    """``(X - mean) / std`` with broadcasting, in X's float dtype (float32 for int input).

    ``mean`` and ``std`` broadcast against X (e.g. (D,) for X (N, D), or (C, 1, 1) for
    X (N, C, H, W)); ``std`` must be positive.
    """
    X = _float(X)
    mean = np.asarray(mean, dtype=X.dtype)
    std = np.asarray(std, dtype=X.dtype)
    if np.any(~(std > 0)):
        raise ValueError(f"standardize: std must be positive everywhere, got min {std.min()!r}")
    try:
        np.broadcast_shapes(X.shape, mean.shape, std.shape)
    except ValueError:
        raise ValueError(
            f"standardize: mean {mean.shape} and std {std.shape} do not broadcast "
            f"against X {X.shape}"
        ) from None
    return (X - mean) / std


class Standardizer:
    """Per-feature or per-channel standardisation fitted on training data.

    Args:
        per: which statistics to keep:
            ``'feature'``: one mean/std per entry of a sample, shape ``X.shape[1:]``;
            ``'channel'``: one per channel (axis 1) of images (N, C, H, W), shape (C,);
            ``'global'``: one scalar over everything;
            ``'auto'`` (default): ``'channel'`` for X with 3 or more axes, else ``'feature'``.
        eps: a std below ``eps`` (a constant feature, e.g. an MNIST corner pixel) is replaced
            by 1, so that feature is only centred instead of divided by ~0.

    After ``fit``, ``mean`` and ``std`` hold float64 statistics; ``transform`` applies them in
    the input's float dtype (float32 stays float32), ``inverse_transform`` undoes it.
    """

    def __init__(self, per: str = "auto", eps: float = 1e-8) -> None:
        if per not in _PER:
            raise ValueError(
                f"Standardizer: unknown per={per!r}; valid: " + ", ".join(map(repr, _PER))
            )
        if not eps >= 0:
            raise ValueError(f"Standardizer: eps must be >= 0, got {eps!r}")
        self.per = per
        self.eps = float(eps)
        self.mode: str | None = None  # the resolved `per` after fit
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def _axes(self, X: np.ndarray, mode: str) -> tuple[int, ...]:
        if mode == "feature":
            return (0,)
        if mode == "channel":
            return (0, *range(2, X.ndim))
        return tuple(range(X.ndim))

    def fit(self, X: np.ndarray) -> Standardizer:
        """Compute the statistics of X (N, ...) in float64; returns self."""
        X = np.asarray(X)
        if X.ndim < 1 or len(X) == 0:
            raise ValueError(f"Standardizer.fit: X must hold at least one sample, got {X.shape}")
        mode = self.per
        if mode == "auto":
            mode = "channel" if X.ndim >= 3 else "feature"
        if mode == "channel" and X.ndim < 2:
            raise ValueError(f"Standardizer(per='channel'): X must be (N, C, ...), got {X.shape}")
        axes = self._axes(X, mode)
        # accumulate in float64 without a float64 copy of X (which would double the memory)
        mean = X.mean(axis=axes, dtype=np.float64)
        std = X.std(axis=axes, dtype=np.float64)
        self.mode = mode
        self.mean = mean
        self.std = np.where(std < self.eps, 1.0, std)
        return self

    def _stats(self, X: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None or self.mode is None:
            raise RuntimeError(f"Standardizer.{who}: call fit(X) first")
        if self.mode == "feature" and X.shape[1:] != self.mean.shape:
            raise ValueError(
                f"Standardizer.{who}: fitted on samples of shape {self.mean.shape}, got X {X.shape}"
            )
        if self.mode == "channel":
            if X.ndim < 2 or X.shape[1] != self.mean.shape[0]:
                raise ValueError(
                    f"Standardizer.{who}: fitted on {self.mean.shape[0]} channels (N, C, ...), "
                    f"got X {X.shape}"
                )
            # (C,) -> (C, 1, ..., 1) to broadcast over the trailing spatial axes
            shape = (-1,) + (1,) * (X.ndim - 2)
            return self.mean.reshape(shape), self.std.reshape(shape)
        return self.mean, self.std

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(X - mean) / std, in X's float dtype."""
        X = _float(X)
        mean, std = self._stats(X, "transform")
        return (X - mean.astype(X.dtype)) / std.astype(X.dtype)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Z * std + mean: undoes ``transform`` (up to rounding)."""
        Z = _float(Z)
        mean, std = self._stats(Z, "inverse_transform")
        return Z * std.astype(Z.dtype) + mean.astype(Z.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The fitted statistics, for checkpoints (arrays and strings only)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer.state_dict: call fit(X) first")
        return {
            "per": self.per,
            "mode": self.mode,
            "mean": self.mean.copy(),
            "std": self.std.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [k for k in ("mode", "mean", "std") if k not in state]
        if missing:
            raise KeyError(f"Standardizer.load_state_dict: missing keys {missing}")
        if str(state["mode"]) not in _PER[1:]:
            raise ValueError(f"Standardizer.load_state_dict: unknown mode {state['mode']!r}")
        self.per = str(state.get("per", state["mode"]))
        self.mode = str(state["mode"])
        self.mean = np.asarray(state["mean"], dtype=np.float64).copy()
        self.std = np.asarray(state["std"], dtype=np.float64).copy()

    def __repr__(self) -> str:
        fitted = "" if self.mean is None else f", fitted {self.mode} {self.mean.shape}"
        return f"Standardizer(per={self.per!r}{fitted})"


# -- augmentation: callables (batch, rng) -> batch, for DataLoader(transform=...) -------------
def _check_images(who: str, X: np.ndarray) -> None:
    if X.ndim != 4:
        raise ValueError(f"{who}: expected a batch of images (N, C, H, W), got shape {X.shape}")


class RandomShift:
    """Translate each image of a batch by its own random offset of up to ``max_shift`` pixels
    along H and W (uniform over ``-max_shift .. max_shift``); the pixels moved in repeat the
    edge (``mode='edge'``), which for MNIST-like images is background whatever the scaling.

    Examples:
        >>> t = RandomShift(1)
        >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
        >>> t(x, np.random.default_rng(0)).shape
        (1, 1, 3, 3)
        >>> RandomShift(0)(x, np.random.default_rng(0)).tolist() == x.tolist()  # no shift
        True
    """

    def __init__(self, max_shift: int) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)):
            raise ValueError(f"RandomShift: max_shift must be an int >= 0, got {max_shift!r}")
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift = int(max_shift)

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_images("RandomShift", X)
        k = self.max_shift
        if k == 0:
            return X
        N, _, H, W = X.shape
        padded = np.pad(X, ((0, 0), (0, 0), (k, k), (k, k)), mode="edge")
        # image n is read from the window starting at (dy[n], dx[n]) of its padded copy: a
        # window start of k is no shift, 0 moves the content down/right by k
        dy, dx = rng.integers(0, 2 * k + 1, size=(2, N))
        out = np.empty_like(X)
        for a in range(2 * k + 1):  # one fancy-indexed copy per distinct offset, not per image
            for b in range(2 * k + 1):
                idx = np.flatnonzero((dy == a) & (dx == b))
                if len(idx):
                    out[idx] = padded[idx, :, a : a + H, b : b + W]
        return out

    def __repr__(self) -> str:
        return f"RandomShift({self.max_shift})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (a label-preserving change for
    clothes and most objects; not for digits).

    Examples:
        >>> x = np.arange(6.0).reshape(1, 1, 2, 3)
        >>> RandomHorizontalFlip(1.0)(x, np.random.default_rng(0))[0, 0].tolist()
        [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
    """

    def __init__(self, p: float = 0.5) -> None:
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1):
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_images("RandomHorizontalFlip", X)
        flip = rng.random(len(X)) < self.p
        out = np.array(X, copy=True)
        out[flip] = X[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p:g})"


class Compose:
    """Apply several batch transforms in turn, each drawing from the same generator.

    Examples:
        >>> t = Compose(RandomHorizontalFlip(1.0), RandomHorizontalFlip(1.0))
        >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
        >>> t(x, np.random.default_rng(0)).tolist() == x.tolist()  # two flips undo each other
        True
    """

    def __init__(self, *transforms: Any) -> None:
        for t in transforms:
            if not callable(t):
                raise ValueError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = transforms

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            X = t(X, rng)
        return X

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"
