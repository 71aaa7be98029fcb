"""Classification metrics for toxicity detection: ROC AUC (scikit-learn) and the
identity-subgroup AUCs of Borkan et al. 2019 (Jigsaw Unintended Bias):
- subgroup AUC: AUC on the items that mention the identity;
- BPSN (background positive, subgroup negative): toxic items without the identity together
  with non-toxic items with it; low values mean non-toxic mentions get flagged;
- BNSP (background negative, subgroup positive): the reverse; low values mean toxic
  mentions are missed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def subgroup_auc(labels: Sequence[int], scores: Sequence[float], in_group: Sequence[bool]) -> float:
    mask = np.asarray(in_group, dtype=bool)
    return auc(np.asarray(labels)[mask], np.asarray(scores)[mask])


def bpsn_auc(labels: Sequence[int], scores: Sequence[float], in_group: Sequence[bool]) -> float:
    y, g = np.asarray(labels), np.asarray(in_group, dtype=bool)
    mask = (g & (y == 0)) | (~g & (y == 1))
    return auc(y[mask], np.asarray(scores)[mask])


def bnsp_auc(labels: Sequence[int], scores: Sequence[float], in_group: Sequence[bool]) -> float:
    y, g = np.asarray(labels), np.asarray(in_group, dtype=bool)
    mask = (g & (y == 1)) | (~g & (y == 0))
    return auc(y[mask], np.asarray(scores)[mask])
