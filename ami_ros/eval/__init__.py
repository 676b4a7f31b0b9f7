"""Evaluation harness, baselines and benchmark reports."""
