"""Inference on one's own videos: predictors and Grad-CAM."""
