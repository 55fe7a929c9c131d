"""SNS notifications to the people who run the pipeline."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.clients import aws_client
from orchestrator.observability import logger


class Notifier:
    def __init__(self, topic_arn: str | None, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("sns")
        return self._client

    def notify(self, subject: str, message: str, **details: Any) -> None:
        """Publish a human-readable message with the details as JSON below it (no topic: log only)."""
        if not self.topic_arn:
            logger.warning("no notification topic configured", subject=subject, **details)
            return
        body = message + ("\n\n" + json.dumps(details, indent=2, default=str) if details else "")
        self.client.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=body)
        logger.info("notification sent", subject=subject)
