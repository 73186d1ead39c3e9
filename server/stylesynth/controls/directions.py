"""Example-based prototypes and directions in ``w`` space, their checks, and selective attribute transfer.

As in the research system (Kamath et al. 2024, ``perceptual_guidance.py``): a set of examples sharing an attribute
is inverted to ``w``'s; its *prototype* is the global mean ``w`` plus the set's mean offset projected on the first
left singular vector of the (uncentred) offsets, i.e. the one axis the set agrees on; a *direction* is
``prototype(A) - prototype(B)``, used as a unit vector. Everything here is plain linear algebra on tensors.
"""
from __future__ import annotations

import torch


def prototype(ws: torch.Tensor, w_mean: torch.Tensor) -> torch.Tensor:
    """Prototype of a set of latents.

    Parameters
    ----------
    ws : torch.Tensor, shape (N, w_dim)
        Inverted examples of one set (N >= 1; the research system finds more than 10 needed for stability).
    w_mean : torch.Tensor, shape (w_dim,)
        The global mean latent of the generator.

    Returns
    -------
    torch.Tensor, shape (w_dim,)
        ``w_mean + u1 u1^T mean(ws - w_mean)`` with ``u1`` the first singular vector of the offsets.
    """
    if ws.dim() != 2 or len(ws) == 0 or ws.shape[1] != w_mean.shape[0]:
        raise ValueError(f"prototype needs (N >= 1, {w_mean.shape[0]}) latents, got {tuple(ws.shape)}")
    offsets = (ws - w_mean).double()
    # Right singular vectors of (N, w_dim) are the left ones of the research system's (w_dim, N) matrix.
    _, _, vh = torch.linalg.svd(offsets, full_matrices=False)
    u1 = vh[0]
    return (w_mean.double() + u1 * (offsets.mean(0) @ u1)).to(ws.dtype)


def direction(ws_a: torch.Tensor, ws_b: torch.Tensor, w_mean: torch.Tensor) -> dict:
    """Direction from set B to set A.

    Returns
    -------
    dict
        ``unit`` (w_dim,) unit vector of ``prototype(A) - prototype(B)``, ``norm`` its length before
        normalising, and the two prototypes ``prototype_a``, ``prototype_b``.

    Raises
    ------
    ValueError
        If the two prototypes coincide (the sets do not differ along any axis the encoder sees).
    """
    pa, pb = prototype(ws_a, w_mean), prototype(ws_b, w_mean)
    d = pa - pb
    norm = float(d.norm())
    if not norm > 1e-8:
        raise ValueError("the two example sets give the same prototype: no direction between them")
    return {"unit": d / norm, "norm": norm, "prototype_a": pa, "prototype_b": pb}


def conditional(units: dict) -> dict:
    """Each unit direction with its components along all the others removed, renormalised (InterFaceGAN's
    conditional manipulation): moving along one then leaves the others' coordinates unchanged.

    Parameters
    ----------
    units : dict of str -> torch.Tensor (w_dim,)
        Two or more unit directions, linearly independent.

    Raises
    ------
    ValueError
        If a direction lies (almost) in the span of the others: nothing of its own would be left.
    """
    out = {}
    for name, unit in units.items():
        others = torch.stack([u for n, u in units.items() if n != name]).double()
        basis, _ = torch.linalg.qr(others.T)             # orthonormal basis of the others' span
        own = unit.double() - basis @ (basis.T @ unit.double())
        norm = float(own.norm())
        if norm < 0.05:
            raise ValueError(f"direction {name!r} lies within the span of the others (|residual| {norm:.3f})")
        out[name] = (own / norm).to(unit.dtype)
    return out


def spread(ws: torch.Tensor, unit: torch.Tensor) -> float:
    """Standard deviation of the latents' coordinate along ``unit``: how far the data itself spans that axis."""
    return float((ws @ unit).std())


def separation(ws_a: torch.Tensor, ws_b: torch.Tensor, unit: torch.Tensor) -> dict:
    """How well a direction separates two sets (e.g. held-out examples): mean coordinates along ``unit``, their
    difference in units of the pooled spread, and the AUC (share of pairs (a, b) with a above b; 1 = perfect,
    0.5 = chance, below 0.5 = the direction points the wrong way)."""
    pa, pb = ws_a @ unit, ws_b @ unit
    pooled = float(torch.cat([pa - pa.mean(), pb - pb.mean()]).std()) or 1e-12
    auc = float((pa[:, None] > pb[None, :]).double().mean() + 0.5 * (pa[:, None] == pb[None, :]).double().mean())
    return {"mean_a": float(pa.mean()), "mean_b": float(pb.mean()),
            "effect": float((pa.mean() - pb.mean()) / pooled), "auc": auc}


def transfer(w: torch.Tensor, w_ref: torch.Tensor, unit: torch.Tensor, amount: float = 1.0,
             limits: tuple[float, float] | None = None) -> torch.Tensor:
    """Selective attribute transfer: move ``w``'s coordinate along ``unit`` to the reference's, leaving every
    orthogonal coordinate alone. ``amount`` 1 replaces the coordinate, 0 keeps ``w``, in between interpolates.

    ``w`` (..., w_dim) and ``w_ref`` (w_dim,) or broadcastable; ``unit`` (w_dim,) of length 1. ``limits``
    (low, high) bounds the new coordinate: a reference that inverts far outside what the generator was trained
    on would otherwise push ``w`` to where it only makes noise.
    """
    target = w @ unit + amount * ((w_ref - w) @ unit)
    if limits is not None:
        target = target.clamp(*limits)
    return w + (target - w @ unit).unsqueeze(-1) * unit


def orthonormal(vectors: torch.Tensor, tol: float = 1e-4) -> bool:
    """Whether the rows of ``vectors`` (K, d) are orthonormal within ``tol``."""
    gram = vectors.double() @ vectors.double().T
    return bool((gram - torch.eye(len(vectors), dtype=torch.float64)).abs().max() <= tol)
