"""Embedded AWS: moto in server mode on loopback, with the APIs moto lacks added with real state."""

from localcloud.aws.codecommit import LocalCodeCommit
from localcloud.aws.protocol import AwsError, RawResponse, RequestInfo
from localcloud.aws.sagemaker import LineageStore, SageMakerExtensions
from localcloud.aws.server import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, EmbeddedAws, EventBus

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "AwsError",
    "EmbeddedAws",
    "EventBus",
    "LineageStore",
    "LocalCodeCommit",
    "RawResponse",
    "RequestInfo",
    "SageMakerExtensions",
]
