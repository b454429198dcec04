"""Evaluation: tasks build requests and score responses; the runner persists everything."""
