"""A Lambda function the pipeline calls (LambdaStep): is the model artifact there, and how big is it?"""

import boto3


def lambda_handler(event, context):
    bucket, _, key = event["model_data"].removeprefix("s3://").partition("/")
    size = boto3.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"]
    decision = "keep" if size >= int(event["min_bytes"]) else "drop"
    return {"statusCode": 200, "decision": decision, "size": size}
