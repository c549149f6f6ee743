"""Content/style image pairs: folder listing, robust loading, seeded pairs, the sample set, the datamodule."""

from lottery_style.data.datamodule import StylePairDataModule, check_data_config
from lottery_style.data.images import DataError, NoImagesError, SkippedFile, SkippedImages, list_images
from lottery_style.data.pairs import EvalPairs, PairDataset, PairLoader, PairSampler
from lottery_style.data.sample import sample_dirs

__all__ = [
    "DataError",
    "EvalPairs",
    "NoImagesError",
    "PairDataset",
    "PairLoader",
    "PairSampler",
    "SkippedFile",
    "SkippedImages",
    "StylePairDataModule",
    "check_data_config",
    "list_images",
    "sample_dirs",
]
