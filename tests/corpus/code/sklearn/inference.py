"""Serving with the scikit-learn container: load model.joblib."""

import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
