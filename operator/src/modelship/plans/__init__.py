"""Plans: what each controller wants, decided purely from what it observed.

``plans.<kind>.plan(observation) -> Plan`` holds the whole next status and the
whole desired set of children (manifests from ``modelship.builders``), plus
the Events to post. It reads no cluster and keeps no state.
"""
