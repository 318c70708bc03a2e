"""Initializer vocabulary shared by the samplers (`initdiag.initializers`, which imports numpy) and
the reference card (`initdiag.reference`, which must not): one copy of each."""

from __future__ import annotations

# std of N(0, 1) truncated to (-2, 2): the correction Keras's and JAX's variance-scaling
# initializers apply to a truncated normal so its variance is the one asked for
TRUNCATED_NORMAL_STD = 0.87962566103423978

# alias -> canonical initializer name
ALIASES: dict[str, str] = {
    "he": "he_normal",
    "kaiming": "he_normal",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "xavier": "xavier_uniform",
    "glorot": "xavier_uniform",
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier_normal",
    "lecun": "lecun_normal",
    "zero": "zeros",
    "truncated_normal": "trunc_normal",
    "eye": "identity",
}
