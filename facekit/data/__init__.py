"""Labels, images, the HDF5 cache, splits and the training batches built from them."""
