"""Plans: what each controller wants, decided purely from what it observed.

``plans.<kind>.plan(observation) -> Plan`` holds the whole next status and the
whole desired set of children (manifests from ``modelship.builders``), plus
the Events to post. It reads no cluster and keeps no state: the controller
observes (``modelship.k8s``), plans, and applies with ``k8s.apply.ensure``.
Planned twice from the world it asked for, a plan asks for the same thing,
so a second reconcile writes nothing.
"""
