"""The content-structure measure orders outputs as a person would, whatever their colours."""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from skimage import data

from lottery_style.models.components.structure import structure_score
from tests.conftest import tiny_model


def photo(size: int) -> torch.Tensor:
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    return TF.resize(image, [size, size], antialias=True)[None]


def test_content_beats_a_recoloured_copy_beats_a_blurred_copy_beats_a_flat_image() -> None:
    for size in (64, 128):
        content = photo(size)
        recoloured = content[:, [2, 0, 1]]  # other colours, the same edges
        blurred = TF.gaussian_blur(content, 9, 3.0)
        flat = torch.full_like(content, 0.5)
        scores = [float(structure_score(content, out)) for out in (content, recoloured, blurred, flat)]
        assert scores[0] == 1.0 or abs(scores[0] - 1.0) < 1e-5
        assert scores[0] > scores[1] > 0.9 > scores[2] > scores[3] == 0.0, scores


def test_a_faint_copy_keeps_only_as_much_structure_as_its_contrast() -> None:
    """A ghost of the content's outline on a flat field: edges in the right places, but 10x weaker."""
    content = photo(64)
    for contrast in (0.1, 0.5):
        faint = content * contrast + (1 - contrast) / 2
        assert abs(float(structure_score(content, faint)) - contrast) < 1e-3


def test_scores_are_per_pair_and_random_noise_keeps_no_structure() -> None:
    content = torch.cat([photo(64), photo(64).flip(-1)])
    scores = structure_score(content, torch.cat([content[:1], torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))]))
    assert scores.shape == (2,) and abs(float(scores[0]) - 1.0) < 1e-5 and abs(float(scores[1])) < 0.1


def test_every_model_reports_structure_beside_its_errors(pair) -> None:
    errors = tiny_model("adain").test_errors(*pair)
    assert errors["structure"].shape == errors["E"].shape == (2,)
    assert torch.all(errors["structure"].abs() <= 1.0)
