"""The server's metrics, in the Prometheus text format at ``GET /metrics``.

Closed to the public: only with the server operator's bearer token (``operator.token`` in
the data directory), as the incidents are. A metric says nothing a stranger could use to
find a call: counts and latencies only, no call ids, devices or addresses.

Each server process has its own registry (``Metrics``): what it counts is what this
process saw; several nodes are summed by Prometheus. Counters and histograms move as
events happen (the store, the hub, signaling and the press gateway call them); the gauges
of live state (calls by phase, connected endpoints, press viewers) are read from the hub
at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from summitline.core.roles import Phase

if TYPE_CHECKING:
    from summitline.server.hub import Hub

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Latencies from half a millisecond (a relay on an idle machine) to 2.5 s (a store that
# stalls); the relay aim of issue 15 (p99 under 50 ms) falls between two buckets' edges.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5)

RELAYED = ("offer", "answer", "candidate")  # the relays that are timed


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.relay = Histogram(
            "summitline_signaling_relay_seconds",
            "From a signaling message's arrival to its relay into the peer's send queue "
            "(an offer or answer is recorded first)", ["type"],
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        for kind in RELAYED:  # shown at zero before the first relay
            self.relay.labels(kind)
        self.append = Histogram(
            "summitline_record_append_seconds",
            "One durable append to a call's shared record (its transaction)",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.turn_credentials = Counter(
            "summitline_turn_credentials_issued",
            "Time-limited TURN credentials handed to authenticated devices",
            registry=self.registry)
        self.incidents = Counter(
            "summitline_incidents", "Incidents counted (GET /api/incidents), by code",
            ["code"], registry=self.registry)
        self.gateway_cpu = Counter(
            "summitline_press_gateway_cpu_seconds",
            "CPU time of the in-process press gateway's encoding (thread time)",
            registry=self.registry)

    def watch(self, hub: Hub) -> None:
        """Count what ``hub``, its store and its press gateway do, from now on."""
        hub.store.on_append = self.append.observe
        hub.store.on_incident = lambda code: self.incidents.labels(code).inc()
        hub.press.on_cpu = self.gateway_cpu.inc
        self.registry.register(_Live(hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    """What the hub holds at the time of the scrape."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        rooms = self.hub.rooms()
        phases = GaugeMetricFamily("summitline_calls", "Calls this process holds, by phase",
                                   labels=["phase"])
        for phase in Phase:
            phases.add_metric([str(phase)], sum(r.state.phase is phase for r in rooms))
        yield phases
        yield GaugeMetricFamily("summitline_connected_endpoints",
                                "Endpoints connected to this process's signaling",
                                value=sum(len(r.endpoints) for r in rooms))
        yield GaugeMetricFamily("summitline_press_viewers",
                                "Press viewers of the in-process gateway, over all calls",
                                value=sum(len(f.viewers) for f in self.hub.press.feeds.values()))
