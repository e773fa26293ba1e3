#!/usr/bin/python3
"""Derives the expected numbers hard-coded in the Evaluation tests with independent tools.

Run with Debian's python3 (apt-get install python3-scipy python3-sklearn), not a pyenv python:
    /usr/bin/python3 tests/ModelCompression.Core.Tests/Evaluation/reference.py
Tools: numpy 1.24 (percentiles, softmax), scipy 1.10 (binomtest, entropy), scikit-learn 1.2 (metrics).
Logits are float32 in the tests, so they are rounded to float32 here before any arithmetic.
"""
import numpy as np
import scipy
import sklearn
from scipy.stats import binomtest, entropy
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             top_k_accuracy_score, mean_absolute_error, mean_squared_error)

print(f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}")

# --- Hand-sized classification case (ClassificationMetricsTests) ---
labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
preds = [0, 0, 1, 1, 1, 2, 2, 0, 2, 2]
print("accuracy", accuracy_score(labels, preds))
print("confusion", confusion_matrix(labels, preds, labels=[0, 1, 2, 3]).tolist())
p, r, f, s = precision_recall_fscore_support(labels, preds, labels=[0, 1, 2, 3], zero_division=0)
print("precision", p.tolist(), "recall", r.tolist(), "f1", f.tolist(), "support", s.tolist())
print("macro_f1", repr(f1_score(labels, preds, average="macro", zero_division=0)))
# A fifth class that is neither a label nor a prediction does not enter the macro mean (sklearn's default labels).
print("macro_f1 (5 classes, class 4 absent)", repr(f1_score(labels, preds, average="macro", zero_division=0)))

# --- Logits case (top-k, ECE, KL) ---
logits = np.array([
    [2.0, 1.0, 0.1, -1.0],
    [0.5, 2.5, 0.3, 0.0],
    [0.2, 0.1, 3.0, 1.0],
    [1.5, 1.4, 1.3, 1.2],
    [-1.0, 0.0, 1.0, 2.0],
    [3.0, -2.0, 0.0, 0.5],
    [0.0, 0.0, 4.0, 0.0],
    [1.0, 2.0, 3.0, 4.0],
], dtype=np.float32).astype(np.float64)
logit_labels = np.array([0, 2, 2, 3, 0, 0, 1, 2])
classes = logits.shape[1]
print("top-1", top_k_accuracy_score(logit_labels, logits, k=1, labels=range(classes)))
print("top-2", top_k_accuracy_score(logit_labels, logits, k=2, labels=range(classes)))
print("top-3", top_k_accuracy_score(logit_labels, logits, k=3, labels=range(classes)))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ece(logits, labels, bins=15):
    prob = softmax(logits)
    conf = prob.max(axis=1)
    pred = prob.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == labels[inside]).mean() - conf[inside].mean())
    return total


print("ece", repr(ece(logits, logit_labels)))

student = np.array([
    [1.0, 1.0, 0.0, 0.0],
    [0.0, 2.0, 1.0, 0.0],
    [0.0, 0.0, 2.0, 2.0],
    [0.0, 0.0, 0.0, 1.0],
    [3.0, 0.0, 0.0, 0.0],
    [2.0, -1.0, 0.5, 0.5],
    [0.0, 1.0, 0.0, 0.0],
    [0.5, 1.5, 2.5, 3.0],
], dtype=np.float32).astype(np.float64)
kl = np.mean([entropy(pt, qs) for pt, qs in zip(softmax(logits), softmax(student))])
print("mean KL(teacher||student)", repr(kl))
print("student ece", repr(ece(student, logit_labels)))
print("agreement", np.mean(logits.argmax(1) == student.argmax(1)))

# --- Regression ---
print("mae", repr(mean_absolute_error([1, 3, 1], [1, 2, 4])), "rmse", repr(np.sqrt(mean_squared_error([1, 3, 1], [1, 2, 4]))))

# --- Percentiles (numpy's default linear interpolation) ---
values = [10.0, 1.0, 3.0, 2.0, 4.0]
print("percentiles 50/95/99/2.5", [repr(np.percentile(values, q)) for q in (50, 95, 99, 2.5)])

# --- McNemar's exact test = two-sided binomial test of min(b, c) of b + c at p = 1/2 ---
for b, c in [(0, 0), (5, 5), (0, 1), (0, 6), (10, 2), (2, 10), (3, 12), (40, 25), (5200, 4800), (15000, 14700), (12000, 10000), (30000, 20000)]:
    print(f"mcnemar b={b} c={c}", repr(binomtest(min(b, c), b + c, 0.5).pvalue) if b + c > 0 else 1.0)
