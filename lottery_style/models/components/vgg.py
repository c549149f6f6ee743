"""The VGG-19 encoder and its weight sources.

Two layouts exist because the references and torchvision disagree on almost
everything but the conv shapes (docs/architectures.md, The encoder): the ``normalised`` layout of
``vgg_normalised.pth`` (a fixed 1x1 preprocessing conv, reflection padding,
ceil-mode pooling, taps 3/10/17/30/43) and torchvision's ``vgg19().features``
(ImageNet normalisation outside the net, zero padding, floor pooling, taps
1/6/11/20/29). Module indices follow each layout exactly so that state dicts
load without renaming.
"""

from __future__ import annotations

import enum
import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# Output channels of every 3x3 conv, grouped by VGG block; None marks a pool.
VGG19_PLAN: tuple[int | None, ...] = (
    64, 64, None, 128, 128, None, 256, 256, 256, 256, None,
    512, 512, 512, 512, None, 512, 512, 512, 512,
)  # fmt: skip

# Fixed preprocessing of the normalised layout: RGB in [0,1] -> BGR*255 - Caffe mean.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Layout(str, enum.Enum):
    normalised = "normalised"
    torchvision = "torchvision"


class WeightsError(ValueError):
    """A weights file that does not fit the encoder layout."""


def first_shape_mismatch(own: dict[str, Tensor], given: dict[str, Tensor]) -> tuple[str, tuple, tuple] | None:
    """(key, given shape, expected shape) of the first key whose shapes differ, or None: a file with the right
    names but other sizes (another depth, another channel count) must not load half-way."""
    for key, tensor in own.items():
        if tuple(given[key].shape) != tuple(tensor.shape):
            return key, tuple(given[key].shape), tuple(tensor.shape)
    return None


def normalised_layers(ceil_mode: bool) -> list[nn.Module]:
    """The full 53-module layout of ``vgg_normalised.pth`` (through relu5_4), preprocessing conv unset."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, kernel_size=1)]
    in_ch = 3
    for out_ch in VGG19_PLAN:
        if out_ch is None:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3), nn.ReLU()]
        in_ch = out_ch
    return layers


def _torchvision_layers(ceil_mode: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in VGG19_PLAN:
        if out_ch is None:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            continue
        layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU()]
        in_ch = out_ch
    return layers


def relu_taps(layout: Layout) -> tuple[int, ...]:
    """Module indices of relu1_1 .. relu5_1 in a layout."""
    layers = normalised_layers(True) if layout is Layout.normalised else _torchvision_layers(False)
    taps, in_block_start = [], True
    for index, module in enumerate(layers):
        if isinstance(module, nn.MaxPool2d):
            in_block_start = True
        elif isinstance(module, nn.ReLU) and in_block_start:
            taps.append(index)
            in_block_start = False
    return tuple(taps)


def conv_indices(layout: Layout) -> tuple[int, ...]:
    """Module indices of the 16 3x3 convs of a layout (the normalised layout's 1x1 input conv excluded)."""
    layers = normalised_layers(True) if layout is Layout.normalised else _torchvision_layers(False)
    return tuple(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))


def preprocessing_state() -> dict[str, Tensor]:
    """Weight and bias of the normalised layout's fixed 1x1 conv: RGB in [0,1] -> BGR*255 - Caffe mean."""
    return {
        "weight": torch.flip(torch.eye(3), dims=[0]).view(3, 3, 1, 1) * 255.0,
        "bias": -torch.tensor(CAFFE_BGR_MEAN),
    }


class VGGEncoder(nn.Module):
    """VGG-19 truncated at relu``depth``_1; ``forward`` returns every relu k_1 up to it."""

    def __init__(self, layout: Layout | str = Layout.normalised, depth: int = 4, ceil_mode: bool | None = None):
        super().__init__()
        self.layout = Layout(layout)
        if not 1 <= depth <= 5:
            raise ValueError(f"encoder depth {depth} is invalid: expected 1..5 (relu1_1..relu5_1)")
        self.depth = depth
        if ceil_mode is None:
            ceil_mode = self.layout is Layout.normalised
        build = normalised_layers if self.layout is Layout.normalised else _torchvision_layers
        self.taps = relu_taps(self.layout)[:depth]
        self.body = nn.Sequential(*build(ceil_mode)[: self.taps[-1] + 1])
        if self.layout is Layout.normalised:
            self._set_preprocessing()
        else:
            self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _set_preprocessing(self) -> None:
        """The 1x1 conv is input normalisation, not a learned layer: fix and freeze it."""
        conv = self.body[0]
        conv.load_state_dict(preprocessing_state())
        conv.requires_grad_(False)

    @property
    def fixed_parameter_names(self) -> set[str]:
        """Parameters that are preprocessing, never trained or pruned."""
        return {"body.0.weight", "body.0.bias"} if self.layout is Layout.normalised else set()

    def tap_conv_weights(self) -> list[str]:
        """The weight name of the conv whose ReLU is each tap (relu1_1 .. relu``depth``_1)."""
        convs = [i for i, m in enumerate(self.body) if isinstance(m, nn.Conv2d)]
        return [f"body.{max(i for i in convs if i < tap)}.weight" for tap in self.taps]

    def prunable_weights(self) -> dict[str, nn.Parameter]:
        """Conv weights, excluding the fixed 1x1 preprocessing conv."""
        return {
            name: param
            for name, param in self.named_parameters()
            if name.endswith("weight") and param.dim() > 1 and name not in self.fixed_parameter_names
        }

    def conv_state_from(self, other: VGGEncoder) -> dict[str, Tensor]:
        """``other``'s 3x3 conv weights and biases under this encoder's keys, conv i to conv i.

        The two layouts index the same 3x3 convs differently (the normalised one
        has padding modules and a 1x1 conv in front), so weights made in one
        layout (e.g. a fresh random encoder) can be carried into the other.
        """
        mine, theirs = self._convs(), other._convs()
        if [tuple(c.weight.shape) for _, c in mine] != [tuple(c.weight.shape) for _, c in theirs]:
            raise WeightsError(f"VGG encoders of depth {self.depth} and {other.depth} have different convs")
        state = {}
        for (name, _), (_, conv) in zip(mine, theirs):
            state[f"body.{name}.weight"] = conv.weight.detach().clone()
            state[f"body.{name}.bias"] = conv.bias.detach().clone()
        return state

    def _convs(self) -> list[tuple[str, nn.Conv2d]]:
        return [(name, m) for name, m in self.body.named_children() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    def forward(self, image: Tensor) -> list[Tensor]:
        x = image if self.layout is Layout.normalised else (image - self.input_mean) / self.input_std
        features, start = [], 0
        for tap in self.taps:
            x = self.body[start : tap + 1](x)
            features.append(x)
            start = tap + 1
        return features

    def load_layout_state_dict(self, state: dict[str, Tensor], source: str) -> None:
        """Load a full-VGG state dict in this layout's indexing, ignoring layers past the truncation.

        A file of another layout or a truncated file fails with the missing keys named,
        because a silently half-loaded encoder ruins every loss downstream.
        """
        own = self.body.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
            raise WeightsError(
                f"{source} does not fit the {self.layout.value} VGG layout: missing keys {shown} "
                f"(found {len(state)} keys, e.g. {', '.join(list(state)[:3])})"
            )
        mismatch = first_shape_mismatch(own, state)
        if mismatch:
            k, shape, expected = mismatch
            raise WeightsError(f"{source} has shape {shape} for key {k}, expected {expected}")
        self.body.load_state_dict({k: state[k] for k in own})
        if self.layout is Layout.normalised:
            self.body[0].requires_grad_(False)
