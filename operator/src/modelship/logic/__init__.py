"""Pure decisions of the operator: no kopf, no Kubernetes client, no I/O.

Each module takes plain values (API models, observed numbers, the time) and
returns what to do: ``conditions`` (set/merge, aggregate Ready), ``revision``
(deterministic names), ``canary`` (replica arithmetic, ``next_rollout_action``),
``analysis`` and ``scrape`` (canary verdicts from pod metrics), ``gates``,
``retrain`` (cooldowns, alert dedup), ``drift`` (DriftMonitor evaluation),
``trainingjob`` and ``model`` (whole statuses and plans).
"""
