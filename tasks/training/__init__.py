"""The network and how it is trained: the architecture registry, input batches, augmentation, precision and
the machine's use per epoch."""
