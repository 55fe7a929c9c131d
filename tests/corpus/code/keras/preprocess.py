"""Preprocessing (scikit-learn container): split the CSV into train/validation (target first, no header, as
SageMaker's built-in algorithms and most examples expect) and a test set of features only for a transform."""

import argparse
import glob
import os

import pandas as pd
from sklearn.model_selection import train_test_split

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="MEDV")
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    frames = [pd.read_csv(path) for path in glob.glob("/opt/ml/processing/input/*.csv")]
    data = pd.concat(frames).head(args.rows)
    columns = [args.target] + [c for c in data.columns if c != args.target]
    data = data[columns]
    train, rest = train_test_split(data, test_size=0.3, random_state=0)
    validation, test = train_test_split(rest, test_size=0.5, random_state=0)
    for name, frame in (("train", train), ("validation", validation)):
        os.makedirs(f"/opt/ml/processing/{name}", exist_ok=True)
        frame.to_csv(f"/opt/ml/processing/{name}/{name}.csv", header=False, index=False)
    os.makedirs("/opt/ml/processing/test", exist_ok=True)
    test.iloc[:, 1:].to_csv("/opt/ml/processing/test/features.csv", header=False, index=False)
    print(f"train={len(train)} validation={len(validation)} test={len(test)}")
