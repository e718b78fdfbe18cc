"""The data layer: robust image reading, dataset layouts, joint transforms, built-in data.

>>> import torch
>>> img = torch.rand(3, 8, 8)
>>> JointTransform(PreprocessConfig(load_size=8, crop_size=8), train=False)([img])[0].shape
torch.Size([3, 8, 8])
"""

from i2i.lazy import lazy_exports

_EXPORTS = {
    "builtin_data_root": "i2i.data.builtin",
    "cached_folder": "i2i.data.builtin",
    "AlignedDataset": "i2i.data.datasets",
    "ImageDataset": "i2i.data.datasets",
    "PairedFolderDataset": "i2i.data.datasets",
    "SingleFolderDataset": "i2i.data.datasets",
    "build_dataset": "i2i.data.datasets",
    "pair_files": "i2i.data.datasets",
    "IMAGE_EXTENSIONS": "i2i.data.io",
    "DataError": "i2i.data.io",
    "DatasetError": "i2i.data.io",
    "ImageReadError": "i2i.data.io",
    "ImageTooLargeError": "i2i.data.io",
    "decode_image": "i2i.data.io",
    "list_images": "i2i.data.io",
    "read_image": "i2i.data.io",
    "write_image": "i2i.data.io",
    "JointTransform": "i2i.data.transforms",
    "PreprocessConfig": "i2i.data.transforms",
    "item_generator": "i2i.data.transforms",
    "UnpairedAlignedDataset": "i2i.data.unpaired",
    "UnpairedDataset": "i2i.data.unpaired",
    "UnpairedFolderDataset": "i2i.data.unpaired",
    "build_unpaired_dataset": "i2i.data.unpaired",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
