"""Shared package of the MLOps orchestrator: typed events, settings, AWS adapters, push/track/deploy logic."""
