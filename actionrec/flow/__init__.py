"""Optical flow for the motion stream: estimation (methods), the uint8 codec, and per-video extraction
to HDF5 (extract). See README.md, section "Optical flow"."""
