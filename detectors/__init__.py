"""Learned anomaly detection over windows of stored metrics. The only package that imports TensorFlow."""
