"""The local pipeline engine: interprets synthesized SageMaker pipeline definitions on the embedded AWS."""

from localcloud.engine.definition import DefinitionError, PipelineDefinition
from localcloud.engine.engine import JobRunnerPort, PipelineEngine, ProgressUpdate
from localcloud.engine.expressions import ExpressionError, ResolutionContext, resolve

__all__ = [
    "DefinitionError",
    "ExpressionError",
    "JobRunnerPort",
    "PipelineDefinition",
    "PipelineEngine",
    "ProgressUpdate",
    "ResolutionContext",
    "resolve",
]
