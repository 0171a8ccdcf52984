"""Artifacts: ``metadata`` (the metadata.json schema) and ``store`` (file:// and
s3:// read/write with sha256 checks), shared by the trainer, server and operator.
"""
