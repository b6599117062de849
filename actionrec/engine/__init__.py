"""The engine every model shares: flags, devices, the training loop, checkpoints, signals, the video test driver."""
