"""Evaluation of per-video predictions: the prediction files, video scores, top-k accuracy and the
confusion matrix, fusion of several models (rules, temperature calibration, the choice of weights on
validation videos and a bootstrap of the evidence), the JSON output, and the combiner's evaluation of a
split (combine_results.py). numpy and h5py only: no torch."""
