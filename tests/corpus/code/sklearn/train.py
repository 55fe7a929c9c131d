"""Training with the SKLearn estimator (script mode): a ridge regression; the tuner reads the metric line."""

import argparse
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()
    train = pd.read_csv(os.path.join(args.train, "train.csv"), header=None).to_numpy()
    validation = pd.read_csv(os.path.join(args.validation, "validation.csv"), header=None).to_numpy()
    model = make_pipeline(StandardScaler(), Ridge(alpha=args.alpha)).fit(train[:, 1:], train[:, 0])
    rmse = float(np.sqrt(np.mean((model.predict(validation[:, 1:]) - validation[:, 0]) ** 2)))
    print(f"validation rmse: {rmse:.5f}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
