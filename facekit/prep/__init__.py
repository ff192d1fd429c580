"""The preprocessing pipeline: a folder of images in, an HDF5 cache out."""
