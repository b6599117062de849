"""actionrec: the library under the flat scripts (data, models, engine, evaluation, reporting, inference).

The scripts at the repository root are thin entry points: they parse flags and hand what they build
from this package to its engine. Arrows run one way: scripts -> library -> models (``actionrec.models``
and the root's ``resnet_3d.py``, which import nothing else from the library).
"""
