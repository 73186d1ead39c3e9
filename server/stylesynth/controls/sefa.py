"""SeFa: unsupervised latent directions in closed form from the generator's own weights (Shen & Zhou, CVPR 2021).

Every modulated convolution turns ``w`` into a style with an affine map ``A_l`` (in_ch x w_dim). A direction ``n``
changes the styles by ``A n``; the directions that change them most are the top eigenvectors of ``A^T A`` with
``A`` all the ``A_l`` stacked. As in the SeFa code, each row of ``A`` (one channel's weight over ``w``) is normalised
first, so that wide layers do not dominate by their weight scale alone. No data, no training: it only needs the
generator. The eigenvectors are orthonormal; their sign is arbitrary, fixed here so the largest-magnitude
coordinate is positive (deterministic across runs).
"""
from __future__ import annotations

import torch


def sefa(generator, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` SeFa directions of a generator.

    Parameters
    ----------
    generator : stylesynth.model.Generator
        Its :meth:`~stylesynth.model.Generator.style_affines` (every modulated convolution, including the skip
        outputs, since edits are applied to all style layers).
    k : int
        How many directions (at most ``w_dim``).

    Returns
    -------
    vectors : torch.Tensor, shape (k, w_dim)
        Orthonormal rows, strongest first.
    eigenvalues : torch.Tensor, shape (k,)
        Eigenvalues of ``A^T A`` for those rows, descending.
    """
    affines = [a.detach().double() for a in generator.style_affines()]
    if not affines:
        raise ValueError("the generator has no style affines")
    a = torch.cat(affines, dim=0)                                  # (sum of in_ch, w_dim)
    k = int(k)
    if not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be in 1..{a.shape[1]} (w_dim), got {k}")
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    eigenvalues, eigenvectors = torch.linalg.eigh(a.T @ a)          # ascending, orthonormal columns
    order = torch.argsort(eigenvalues, descending=True)[:k]
    vectors = eigenvectors[:, order].T.contiguous()
    biggest = vectors.abs().argmax(dim=1)
    signs = torch.sign(vectors[torch.arange(k), biggest])
    vectors = vectors * signs[:, None]
    return vectors.float(), eigenvalues[order].float()
