"""Independent reference for trainyard's paired DeLong test.

Reads JSON {"y": [...], "a": [...], "b": [...]} on stdin, writes JSON with both ROC AUCs (from
scikit-learn's roc_auc_score), the variance of their difference, z and the two-sided p-value
(scipy's normal survival function).

The variance follows Sun & Xu, "Fast Implementation of DeLong's Algorithm for Comparing the Areas
Under Correlated Receiver Operating Characteristic Curves", IEEE Signal Processing Letters 21(11),
2014: structural components from mid-ranks (scipy.stats.rankdata) of each class and of both
classes pooled, a different computation from trainyard's (placements by binary search).
"""

import json
import sys

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score


def structural_components(scores, positive):
    x, y = scores[positive], scores[~positive]
    m, n = len(x), len(y)
    tx, ty = rankdata(x), rankdata(y)
    tz = rankdata(np.concatenate([x, y]))
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return v10, v01


def main():
    data = json.load(sys.stdin)
    y = np.asarray(data["y"], dtype=float)
    a = np.asarray(data["a"], dtype=float)
    b = np.asarray(data["b"], dtype=float)
    positive = y == 1.0
    a10, a01 = structural_components(a, positive)
    b10, b01 = structural_components(b, positive)
    m, n = positive.sum(), (~positive).sum()
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    s = s10 / m + s01 / n
    variance = s[0, 0] + s[1, 1] - 2.0 * s[0, 1]
    auc_a, auc_b = roc_auc_score(y, a), roc_auc_score(y, b)
    delta = auc_b - auc_a
    z = delta / np.sqrt(variance) if variance > 0 else 0.0
    p = 2.0 * norm.sf(abs(z)) if variance > 0 else 1.0
    json.dump({"auc_a": auc_a, "auc_b": auc_b, "variance": variance, "z": z, "p_value": p}, sys.stdout)


if __name__ == "__main__":
    main()
