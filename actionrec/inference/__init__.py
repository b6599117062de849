"""Trained models on whole videos: how each model kind sees a test video (frame, clip and RNN views),
per-frame feature extraction, and predict.py's predictors, fusion and Grad-CAM explanations."""
