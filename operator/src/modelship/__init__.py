"""Modelship: a Kubernetes operator for the whole life of a tabular model."""

__version__ = "0.1.0"
