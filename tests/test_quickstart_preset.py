"""The quickstart's model can learn where things are: its transform's features see less than a training crop.

A feature whose receptive field covers the whole crop says little about where in the crop an edge lies, so a
decoder trained on it in a few hundred steps draws the style without the content's layout (measured in
docs/getting-started.md, "Why the quickstart departs from the paper"). The receptive field is computed from the
encoder's own modules, so a change of level, crop size or VGG layout that breaks the property fails here.
"""

from __future__ import annotations

import pytest
from torch import nn

from lottery_style.models import create_model
from tests.conftest import compose_train


def receptive_field(body: nn.Sequential) -> int:
    """Side in pixels of the input window one output feature of ``body`` depends on (convs and poolings in order)."""
    field, jump = 1, 1
    for module in body:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            field += (kernel - 1) * jump
            jump *= stride
    return field


@pytest.mark.parametrize(("level", "expected"), [(1, 3), (2, 10), (3, 24), (4, 68)])
def test_the_receptive_field_of_each_relu_level_of_vgg19(level: int, expected: int) -> None:
    cfg = compose_train(["model.encoder.weights=random", f"model.level={level}", f"model.style_levels={level}"])
    assert receptive_field(create_model(cfg.model).encoder.body) == expected


def test_the_quickstart_transform_sees_less_than_its_training_crop() -> None:
    cfg = compose_train(["experiment=quickstart", "model.encoder.weights=random"])
    model = create_model(cfg.model)
    assert receptive_field(model.encoder.body) < cfg.data.crop_size
    # the signature experiments keep the paper's relu4_1, whose features see more than the whole crop
    signature = compose_train(["experiment=signature", "model.encoder.weights=random"])
    assert receptive_field(create_model(signature.model).encoder.body) > signature.data.crop_size
