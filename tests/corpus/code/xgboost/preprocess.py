"""Preprocessing (scikit-learn container), as the "build, train, deploy" project template's preprocess.py
does it: read the raw CSV, put the target first, drop the header, and split 70/15/15 into train,
validation and test."""

import argparse
import os

import numpy as np
import pandas as pd

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-data", default="/opt/ml/processing/input/boston_housing.csv")
    parser.add_argument("--target", default="MEDV")
    args = parser.parse_args()
    frame = pd.read_csv(args.input_data)
    frame = frame[[args.target] + [c for c in frame.columns if c != args.target]]
    rows = frame.sample(frac=1, random_state=0).to_numpy()
    train, validation, test = np.split(rows, [int(0.7 * len(rows)), int(0.85 * len(rows))])
    base = "/opt/ml/processing"
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        os.makedirs(f"{base}/{name}", exist_ok=True)
        pd.DataFrame(part).to_csv(f"{base}/{name}/{name}.csv", header=False, index=False)
    print(f"train={len(train)} validation={len(validation)} test={len(test)}")
