"""The library behind the scripts at the repository root, split by idea.

data/ (datasets, samplers, loaders), models/ (model builders), engine/ (the one training and test loop),
evaluation/ (prediction files, scores, accuracy, fusion and its weights), reporting/ (tables, sentences,
figures, the PDF report), inference/ (predicting videos with trained checkpoints). Nothing runs at import
time, and nothing is re-exported here: import the module you need (``from actionrec.evaluation import
predictions``), so that a test can replace one module attribute for every caller.
"""
