"""Pure manifest builders: spec in, plain dict out (``build_*``); the I/O layer applies them.

``training`` (trainer Job, spec ConfigMap), ``serving`` (revision Deployment),
``routing`` (Services, HPA, HTTPRoute), ``monitoring`` (PrometheusRule);
``common`` holds labels, owner references and the hardened pod settings.
"""
