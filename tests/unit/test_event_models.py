"""Event fields the handlers compare: endpoint states arrive as IN_SERVICE in events (AWS's documented
example) and InService from DescribeEndpoint; both compare as one canonical spelling."""

from __future__ import annotations

import pytest

from orchestrator.events import canonical_status


@pytest.mark.parametrize(
    ("status", "canonical"),
    [
        ("IN_SERVICE", "IN_SERVICE"),  # the event's spelling
        ("InService", "IN_SERVICE"),  # DescribeEndpoint's
        ("Updating", "UPDATING"),
        ("SystemUpdating", "SYSTEM_UPDATING"),
        ("OutOfService", "OUT_OF_SERVICE"),
        ("FAILED", "FAILED"),
        ("in_service", "IN_SERVICE"),
        ("In_Service", "IN_SERVICE"),  # an underscore already separates the words: no second one
    ],
)
def test_endpoint_statuses_compare_in_one_spelling(status: str, canonical: str) -> None:
    assert canonical_status(status) == canonical
