"""The model definitions (C3D, the feature RNN, the exact whole-video pass of the 3D ResNet) and the reader of
released weight files. They import nothing else from the library: arrows run scripts -> library -> models
(this package and the root's resnet_3d.py)."""
