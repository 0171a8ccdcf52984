"""Which Prometheus URLs the operator queries (and sends its token to): a table of URLs
against allowed prefixes, matched on scheme, host, port and whole path segments."""

from __future__ import annotations

import pytest

from modelship.logic.prometheus_urls import BadUrl, Endpoint, allow_list, parse, refusal

ALLOWED = ["http://prometheus.monitoring.svc:9090", "https://thanos.example.com/prom/"]


@pytest.mark.parametrize("url", [
    "http://prometheus.monitoring.svc:9090",
    "http://prometheus.monitoring.svc:9090/",
    "http://prometheus.monitoring.svc:9090/tenant/a",       # below the prefix
    "HTTP://PROMETHEUS.monitoring.svc:9090",                 # scheme and host are case-insensitive
    "https://thanos.example.com/prom",                       # the prefix's trailing slash does not matter
    "https://thanos.example.com:443/prom/tenant-a",          # the scheme's default port, written out
    "https://thanos.example.com/%70rom",                     # a percent-encoded segment is the same segment
])
def test_allowed(url: str) -> None:
    assert refusal(url, ALLOWED, token=True) is None


@pytest.mark.parametrize(("url", "words"), [
    ("http://prometheus.monitoring.svc:9090@evil.example", "user info"),   # the allowed host as user name
    ("http://prometheus.monitoring.svc:9090@evil.example:9090", "user info"),
    ("http://user:pw@prometheus.monitoring.svc:9090", "user info"),        # even for the allowed host
    ("http://prometheus.monitoring.svc.evil.example:9090", "not under"),   # a host that starts alike
    ("http://prometheus.monitoring.svc.:9090", "not under"),               # another spelling is another host
    ("http://prometheus.monitoring.svc:9091", "not under"),                # another port
    ("http://prometheus.monitoring.svc", "not under"),                     # port 80, not 9090
    ("https://prometheus.monitoring.svc:9090", "not under"),               # https for an http prefix
    ("http://thanos.example.com/prom", "not under"),                       # plain http for an https prefix
    ("http://thanos.example.com:443/prom", "not under"),
    ("https://thanos.example.com/prometheus", "not under"),                # a segment that starts alike
    ("https://thanos.example.com/", "not under"),                          # above the prefix
    ("https://thanos.example.com/other/prom", "not under"),
    ("http://10.96.0.1:443", "not under"),                                 # any other in-cluster address
    ("http://[::1]:9090", "not under"),
    ("https://thanos.example.com/prom/../admin", "'..'"),                  # climbing out of the prefix
    ("https://thanos.example.com/prom/%2e%2e/admin", "'..'"),
    ("https://thanos.example.com/prom%2F..%2Fadmin", "encoded slash"),
    ("http://prometheus.monitoring.svc:9090?x=1", "query"),
    ("http://prometheus.monitoring.svc:9090/#x", "fragment"),
    ("http://prometheus.monitoring.svc:9090\\@evil.example", "backslash"),
    ("http://prometheus.monitoring.svc:9090/ x", "whitespace"),
    ("http://prometheus.monitoring.svc:90z0", "does not parse"),
    ("http://prometheus.monitoring.svc:99999", "does not parse"),
    ("file:///var/run/secrets/kubernetes.io/serviceaccount/token", "scheme"),
    ("ftp://prometheus.monitoring.svc:9090", "scheme"),
    ("http:///api", "no host"),
])
def test_refused(url: str, words: str) -> None:
    message = refusal(url, ALLOWED, token=True)
    assert message is not None and words in message, message


def test_the_refusal_names_the_allowed_urls_and_the_chart_value() -> None:
    message = refusal("http://evil.example:9090", ALLOWED, token=False)
    assert message == ("source.prometheusUrl http://evil.example:9090 is not under an allowed Prometheus URL "
                       "(http://prometheus.monitoring.svc:9090, https://thanos.example.com/prom/): use one of them, "
                       "or have the platform admin add it to the chart value prometheus.allowedUrls "
                       "(MODELSHIP_PROMETHEUS_ALLOWED_URLS)")


@pytest.mark.parametrize(("url", "token", "allowed"), [
    ("http://anything.example:1234/x", False, True),    # no token, no list: as before allow-lists existed
    ("http://10.96.0.1:443", False, True),
    ("http://u@anything.example", False, False),         # a malformed URL never
    ("http://prometheus.monitoring.svc:9090", True, False),  # a token and no list: nobody may receive it
    ("https://anything.example", True, False),
])
def test_an_empty_allow_list(url: str, token: bool, allowed: bool) -> None:
    message = refusal(url, [], token=token)
    assert (message is None) == allowed, message
    if token:
        assert message is not None and "prometheus.allowedUrls" in message and "bearer token" in message


def test_a_list_without_a_token_still_confines_the_queries() -> None:
    assert refusal("http://10.96.0.1:443", ALLOWED, token=False) is not None


def test_an_allowed_entry_that_does_not_parse_covers_nothing() -> None:
    allowed = ["http://u@prometheus.monitoring.svc:9090", "http://ok.example"]
    assert refusal("http://prometheus.monitoring.svc:9090", allowed, token=True) is not None
    assert refusal("http://ok.example/x", allowed, token=True) is None


@pytest.mark.parametrize(("url", "endpoint"), [
    ("http://Prom:9090/a//b/", Endpoint("http", "prom", 9090, ("a", "b"))),
    ("https://prom", Endpoint("https", "prom", 443, ())),
    ("http://[fd00::1]", Endpoint("http", "fd00::1", 80, ())),
])
def test_parse(url: str, endpoint: Endpoint) -> None:
    assert parse(url) == endpoint


def test_the_allow_list_is_checked_at_start_up() -> None:
    assert allow_list(ALLOWED) == [parse(u) for u in ALLOWED]
    with pytest.raises(BadUrl, match=r"MODELSHIP_PROMETHEUS_ALLOWED_URLS entry 'http://a@b' is refused: .*user info"):
        allow_list(["http://ok", "http://a@b"])
