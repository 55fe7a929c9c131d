"""Training with the XGBoost estimator in script mode (an entry point run in the XGBoost image)."""

import argparse
import os

import pandas as pd
import xgboost as xgb

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--num_round", type=int, default=30)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()
    train = pd.read_csv(os.path.join(args.train, "train.csv"), header=None)
    validation = pd.read_csv(os.path.join(args.validation, "validation.csv"), header=None)
    dtrain = xgb.DMatrix(train.iloc[:, 1:], label=train.iloc[:, 0])
    dvalidation = xgb.DMatrix(validation.iloc[:, 1:], label=validation.iloc[:, 0])
    booster = xgb.train(
        {"max_depth": args.max_depth, "eta": 0.2, "objective": "reg:squarederror"},
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dtrain, "train"), (dvalidation, "validation")],
    )
    booster.save_model(os.path.join(args.model_dir, "xgboost-model"))
