"""Training (TensorFlow container, script mode): a small Keras regressor; the SavedModel goes to
SM_MODEL_DIR/<version>/, the layout TensorFlow Serving reads."""

import argparse
import os

import numpy as np
import pandas as pd
import tensorflow as tf

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--model_dir")  # the TensorFlow estimator passes its S3 model_dir; unused here
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()
    train = pd.read_csv(os.path.join(args.train, "train.csv"), header=None).to_numpy("float32")
    validation = pd.read_csv(os.path.join(args.validation, "validation.csv"), header=None).to_numpy("float32")
    tf.keras.utils.set_random_seed(0)
    normalizer = tf.keras.layers.Normalization()
    normalizer.adapt(train[:, 1:])
    model = tf.keras.Sequential(
        [
            tf.keras.Input((train.shape[1] - 1,)),
            normalizer,
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate), loss="mse")
    model.fit(train[:, 1:], train[:, 0], epochs=args.epochs, verbose=0)
    rmse = float(np.sqrt(model.evaluate(validation[:, 1:], validation[:, 0], verbose=0)))
    print(f"validation rmse: {rmse:.4f}")
    model.export(os.path.join(os.environ["SM_MODEL_DIR"], "1"))
