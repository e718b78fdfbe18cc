"""The Python API: find components, build networks, load a trained run and translate.

Usage: python examples/python_api.py RUN_DIR IMAGE OUT.png
"""

import sys

from PIL import Image

import i2i

# Everything is found by name in the registries that plugins fill.
print("discriminators:", i2i.list_components("discriminators"))
disc = i2i.create_discriminator("patch70", in_channels=6)
print("patch70 receptive field:", disc.receptive_field)
gen = i2i.create_generator("unet_256", 3, 3)
print("unet_256 parameters:", sum(p.numel() for p in gen.parameters()))

# A trained run describes itself: no flags to retype.
run_dir, image_path, out_path = sys.argv[1:4]
model = i2i.load(run_dir, mode="eval")
image = Image.open(image_path).convert("RGB")
result = model.translate(image)  # any size: padded to the generator's multiple, cropped back
assert result.size == image.size
result.save(out_path)
print(f"{image_path} {image.size} -> {out_path}")
