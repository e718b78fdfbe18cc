"""The data layer: robust image reading, dataset layouts, joint transforms, built-in data.

>>> import torch
>>> img = torch.rand(3, 8, 8)
>>> JointTransform(PreprocessConfig(load_size=8, crop_size=8), train=False)([img])[0].shape
torch.Size([3, 8, 8])
"""

from i2i.data.builtin import builtin_data_root, cached_folder
from i2i.data.datasets import (
    AlignedDataset,
    ImageDataset,
    PairedFolderDataset,
    SingleFolderDataset,
    build_dataset,
    pair_files,
)
from i2i.data.io import (
    IMAGE_EXTENSIONS,
    DataError,
    DatasetError,
    ImageReadError,
    ImageTooLargeError,
    decode_image,
    list_images,
    read_image,
    write_image,
)
from i2i.data.transforms import JointTransform, PreprocessConfig, item_generator
from i2i.data.unpaired import (
    UnpairedAlignedDataset,
    UnpairedDataset,
    UnpairedFolderDataset,
    build_unpaired_dataset,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "AlignedDataset",
    "DataError",
    "DatasetError",
    "ImageDataset",
    "ImageReadError",
    "ImageTooLargeError",
    "JointTransform",
    "PairedFolderDataset",
    "PreprocessConfig",
    "SingleFolderDataset",
    "UnpairedAlignedDataset",
    "UnpairedDataset",
    "UnpairedFolderDataset",
    "build_dataset",
    "build_unpaired_dataset",
    "builtin_data_root",
    "cached_folder",
    "decode_image",
    "item_generator",
    "list_images",
    "pair_files",
    "read_image",
    "write_image",
]
