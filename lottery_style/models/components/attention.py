"""Attention pieces shared by the attention-based transforms (SANet, MANet, AdaAttN).

The functions work on flattened features ``[B, channels, positions]`` so that a
caller may subsample or concatenate positions before attending (AdaAttN does).
The softmax always runs over the *style* (key) positions: every content position
gets a convex combination of style values (docs/architectures.md, Implementation notes).
"""

from __future__ import annotations

from torch import Tensor, nn

from lottery_style.models.components.stats import mvn


def attention_weights(query: Tensor, key: Tensor) -> Tensor:
    """Softmax over key positions of Q^T K: ``[B, Ck, Nq]`` x ``[B, Ck, Nk]`` -> ``[B, Nq, Nk]``.

    No 1/sqrt(Ck) scaling: the references use the raw dot product, and the
    loss weights were tuned with it.
    """
    return (query.transpose(1, 2) @ key).softmax(dim=-1)


def weighted_sum(weights: Tensor, value: Tensor) -> Tensor:
    """Each query position's attention-weighted sum of values: ``[B, Nq, Nk]``, ``[B, C, Nk]`` -> ``[B, C, Nq]``."""
    return value @ weights.transpose(1, 2)


def softmax_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Attend from query to key positions: Q ``[B, Ck, Nq]``, K ``[B, Ck, Nk]``, V ``[B, C, Nk]`` -> ``[B, C, Nq]``."""
    return weighted_sum(attention_weights(query, key), value)


class _Projections(nn.Module):
    """Query, key, value and output 1x1 convs C->C with bias (1,050,624 parameters at C=512)."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.query, self.key, self.value, self.output = (nn.Conv2d(channels, channels, 1) for _ in range(4))


class StyleAttention(_Projections):
    """SANet's style-attention block (docs/architectures.md, SANet): content positions attend to style positions.

    Queries and keys come from mean-variance normalised features so that the
    attention matches *patterns*, while values are the raw style features so
    that the output carries the style's statistics. The residual keeps the
    content layout; ``output`` (o) maps the attended values into it.
    MANet reuses the block as its content self-attention and its co-adaptation.
    """

    def attention(self, content: Tensor, style: Tensor) -> Tensor:
        """Attention weights ``[B, Hc*Wc, Hs*Ws]`` (each row sums to 1)."""
        return attention_weights(self.query(mvn(content)).flatten(2), self.key(mvn(style)).flatten(2))

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        attended = weighted_sum(self.attention(content, style), self.value(style).flatten(2))
        # Back to the content's positions with the values' own channel count: a slim model's value conv
        # keeps fewer channels than the content has (lottery-style export --slim).
        return content + self.output(attended.unflatten(2, content.shape[2:]))


class ChannelAttention(_Projections):
    """MANet's style self-attention (docs/architectures.md, MANet): attention between style *channels*, C x C.

    Unlike :class:`StyleAttention`, queries and keys are the raw features and
    the values are normalised: the block reorganises style channels by their
    correlation rather than copying style statistics.
    """

    def attention(self, style: Tensor) -> Tensor:
        """``A = softmax_lastdim(f(Fs) g(Fs)^T)``, ``[B, C, C]`` (each row sums to 1)."""
        # Channels play the role of positions here, so attend over the transposed maps.
        query, key = self.query(style).flatten(2), self.key(style).flatten(2)
        return attention_weights(query.transpose(1, 2), key.transpose(1, 2))

    def forward(self, style: Tensor) -> Tensor:
        value = self.value(mvn(style)).flatten(2)
        mixed = self.attention(style).transpose(1, 2) @ value  # O = A^T V
        return style + self.output(mixed.view_as(style))
