"""Served models: a TensorFlow-Serving-layout repository, rollback, retrain and promotion."""
