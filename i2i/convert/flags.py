"""The official pix2pix/CycleGAN code's choices that ``i2i convert`` takes as flags, importable
without torch (:mod:`i2i.convert.official` converts).

>>> MODELS, NET_D
(('pix2pix', 'cycle_gan'), ('basic', 'n_layers', 'pixel'))
"""

MODELS = ("pix2pix", "cycle_gan")
NET_G = ("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks")
NET_D = ("basic", "n_layers", "pixel")
NORMS = ("batch", "instance", "none")
