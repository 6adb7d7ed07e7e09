"""Evaluation data the project can build from real photos, and the metrics each field uses."""
