"""The Helm chart's Python side: its values model (the one source of
``values.schema.json`` and the docs' values table), helm invocation, and
``make chart-lint``. The chart itself lives in ``charts/modelship``."""
