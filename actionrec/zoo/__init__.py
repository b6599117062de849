"""The model zoo: from flags and a class count to a model of each kind, with its pretrained weights."""
