"""Data: split lists, video files and decoding, samples and augmentation, crops, batching."""
