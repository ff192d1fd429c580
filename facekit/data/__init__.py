"""Labels, images, the HDF5 cache, splits and the training batches built from them."""

import os

# albumentations 2.0 asks the package index for a newer version on every import, unless this is set; the
# subpackage sets it before any of its modules imports albumentations (an offline machine would wait on it).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
