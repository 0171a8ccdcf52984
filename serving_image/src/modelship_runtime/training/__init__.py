"""The trainer (``modelship-train``): data → pipeline → search → ONNX → gates → artifact.

Modules: data (load, check), pipeline, registry (the estimator allow-list),
search, convert (ONNX, feeds, parity), metrics, gates, fairness, explain,
reference (drift reference), train (one run), cli (exit codes, summary).
"""
