"""The pieces the six architectures are built from: the VGG encoder and its weight sources, the mirrored decoder,
attention blocks, feature statistics and losses, released reference files, the structure score, batching."""
