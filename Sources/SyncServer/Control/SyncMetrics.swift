public import Foundation
public import Metrics
public import Prometheus
public import SyncEngine
public import SyncModel
import SyncStore
import Synchronization

/// The daemon's Prometheus series, in a registry of their own.
///
/// The global `MetricsSystem` is never bootstrapped: the series live in ``registry`` (scraped
/// by ``MetricsServer``), and other code that wants swift-metrics instruments in the same
/// scrape passes ``factory`` explicitly, e.g. `Timer(label: "ehr_sync_cycle", factory: metrics.factory)`.
///
/// Gauges are set from a ``StatusReport`` on every scrape (``update(from:http:outboxDepth:conflicts:now:)``);
/// HTTP counters follow the client's running totals. Labels carry only fixed vocabularies
/// (states, status classes, the version), never an id, a message or patient data.
public final class SyncMetrics: Sendable {
    /// Every state `ehr_sync_state` has a series for; the current one is 1, the others 0.
    public static let states = ["starting", "initial-sync", "online", "degraded", "outage", "paused"]
    /// HTTP status classes with a series of their own; anything else counts as `other`.
    public static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]

    /// HTTP outcome totals, as kept by ``FHIRClient/Stats``.
    public struct HTTPTotals: Sendable, Equatable {
        /// Responses by status class (`2xx`, `5xx`, …).
        public var responsesByClass: [String: Int]
        public var retries: Int
        public var networkErrors: Int

        public init(responsesByClass: [String: Int] = [:], retries: Int = 0, networkErrors: Int = 0) {
            self.responsesByClass = responsesByClass
            self.retries = retries
            self.networkErrors = networkErrors
        }

        public init(_ stats: FHIRClient.Stats) {
            self.init(responsesByClass: stats.byClass, retries: stats.retries, networkErrors: stats.networkErrors)
        }
    }

    public let registry: PrometheusCollectorRegistry

    /// A swift-metrics factory writing into ``registry`` (series made through it carry no HELP text).
    public var factory: any MetricsFactory { PrometheusMetricsFactory(registry: registry) }

    let resources: Prometheus.Gauge
    let outboxDepth: Prometheus.Gauge
    let conflicts: Prometheus.Gauge
    let heldChanges: Prometheus.Gauge
    let heldRegressions: Prometheus.Gauge
    let heldMassDeletions: Prometheus.Gauge
    let rejectedResources: Prometheus.Gauge
    let initialSyncComplete: Prometheus.Gauge
    let stateGauges: [String: Prometheus.Gauge]
    let responses: [String: Prometheus.Counter]
    let retries: Prometheus.Counter
    let networkErrors: Prometheus.Counter
    let lag: OptionalGauge
    let dataAsOf: OptionalGauge
    let lastSync: OptionalGauge
    let failingSince: OptionalGauge
    /// The HTTP totals last applied, to turn running totals into counter increments; also
    /// serialises updates from concurrent scrapes.
    let applied = Mutex(HTTPTotals())

    public init(version: String = EHRSync.version) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func gauge(_ name: String, _ help: String) -> Prometheus.Gauge {
            registry.makeGauge(descriptor: describe(name, help))
        }
        resources = gauge("resources", "Live resources in the replica.")
        outboxDepth = gauge("outbox_depth", "Local changes waiting in the outbox to be sent to the EHR.")
        conflicts = gauge("conflicts", "Conflicts waiting for review.")
        heldChanges = gauge(
            "held_changes", "Server changes held for an operator (regressions and mass deletions).")
        heldRegressions = gauge("held_regressions", "Held server versions older than the replica's.")
        heldMassDeletions = gauge("held_mass_deletions", "Held deletions from cycles over the guard.")
        rejectedResources = gauge("rejected_resources", "Resources skipped as unusable (too large, invalid).")
        initialSyncComplete = gauge(
            "initial_sync_complete", "1 once the first full copy of the EHR is in the replica, else 0.")
        stateGauges = Dictionary(
            uniqueKeysWithValues: Self.states.map { state in
                (
                    state,
                    registry.makeGauge(
                        descriptor: describe("state", "1 for the daemon's current state, 0 for the others."),
                        labels: [("state", state)])
                )
            })
        responses = Dictionary(
            uniqueKeysWithValues: (Self.statusClasses + ["other"]).map { statusClass in
                (
                    statusClass,
                    registry.makeCounter(
                        descriptor: describe(
                            "http_responses", unit: "total", "HTTP responses from the EHR by status class."),
                        labels: [("class", statusClass)])
                )
            })
        retries = registry.makeCounter(
            descriptor: describe(
                "http_retries", unit: "total", "Requests to the EHR retried after a network error, 5xx or 429."))
        networkErrors = registry.makeCounter(
            descriptor: describe(
                "http_network_errors", unit: "total", "Requests to the EHR that failed without a response."))
        lag = OptionalGauge(
            registry: registry, name: "lag", unit: "seconds",
            help:
                "Seconds between now and the server time the replica is complete up to; absent before the first cursor."
        )
        dataAsOf = OptionalGauge(
            registry: registry, name: "data_as_of_timestamp", unit: "seconds",
            help: "Server time (Unix seconds) the replica is complete up to; absent before the first cursor.")
        lastSync = OptionalGauge(
            registry: registry, name: "last_sync_timestamp", unit: "seconds",
            help: "Local time (Unix seconds) of the last complete sync cycle; absent before the first.")
        failingSince = OptionalGauge(
            registry: registry, name: "failing_since_timestamp", unit: "seconds",
            help: "Since when (Unix seconds) the EHR has been failing; absent while it answers.")
        registry.makeGauge(
            descriptor: describe("build_info", "Always 1; the version as a label."), labels: [("version", version)]
        ).set(to: 1)
    }

    /// Sets every series from the daemon's status and the EHR client's running totals.
    public func update(
        from status: StatusReport, http: FHIRClient.Stats, outboxDepth: Int, conflicts: Int, now: Date = Date()
    ) {
        update(from: status, http: HTTPTotals(http), outboxDepth: outboxDepth, conflicts: conflicts, now: now)
    }

    /// Sets every series from the daemon's status and HTTP running totals.
    ///
    /// Counters advance by the difference from the totals last applied; totals lower than those
    /// (a new client) restart the counters, which Prometheus reads as a counter reset.
    public func update(
        from status: StatusReport, http: HTTPTotals, outboxDepth: Int, conflicts: Int, now: Date = Date()
    ) {
        applied.withLock { previous in
            resources.set(to: Double(status.resources))
            self.outboxDepth.set(to: Double(outboxDepth))
            self.conflicts.set(to: Double(conflicts))
            heldChanges.set(to: Double(status.heldChanges))
            heldRegressions.set(to: Double(status.heldRegressions))
            heldMassDeletions.set(to: Double(status.heldMassDeletions))
            rejectedResources.set(to: Double(status.rejectedResources))
            initialSyncComplete.set(to: status.initialSyncComplete ? 1 : 0)
            // An unknown state leaves every series at 0 rather than minting a new label value.
            for (state, gauge) in stateGauges { gauge.set(to: state == status.state ? 1 : 0) }

            let asOf = status.dataAsOf.flatMap(FHIRInstant.parse)
            dataAsOf.set(asOf)
            // Clock skew between the practice and the EHR must not show as negative lag.
            lag.set(asOf.map { max(0, now.timeIntervalSince1970 - $0) })
            lastSync.set(status.lastSyncAt.flatMap(FHIRInstant.parse))
            failingSince.set(status.failingSince.flatMap(FHIRInstant.parse))

            let current = Self.normalised(http)
            for (statusClass, counter) in responses {
                Self.advance(
                    counter, from: previous.responsesByClass[statusClass, default: 0],
                    to: current.responsesByClass[statusClass, default: 0])
            }
            Self.advance(retries, from: previous.retries, to: current.retries)
            Self.advance(networkErrors, from: previous.networkErrors, to: current.networkErrors)
            previous = current
        }
    }

    /// Folds status classes outside 1xx–5xx into `other`.
    static func normalised(_ totals: HTTPTotals) -> HTTPTotals {
        var result = totals
        result.responsesByClass = [:]
        for (statusClass, count) in totals.responsesByClass {
            let key = statusClasses.contains(statusClass) ? statusClass : "other"
            result.responsesByClass[key, default: 0] += count
        }
        return result
    }

    static func advance(_ counter: Prometheus.Counter, from old: Int, to new: Int) {
        if new >= old {
            if new > old { counter.increment(by: Int64(new - old)) }
        } else {
            counter.reset()
            if new > 0 { counter.increment(by: Int64(new)) }
        }
    }
}

/// `ehr_sync_<name>[_<unit>]` with its HELP text.
private func describe(_ name: String, unit: String = "", _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(namespace: "ehr_sync", metricName: name, unitName: unit, helpText: help)
}

/// An unlabelled gauge that is absent from the exposition while its value is unknown, so that
/// "never synced" cannot read as "no lag".
final class OptionalGauge: Sendable {
    let registry: PrometheusCollectorRegistry
    let name: String
    let unit: String
    let help: String
    let gauge = Mutex<Prometheus.Gauge?>(nil)

    init(registry: PrometheusCollectorRegistry, name: String, unit: String, help: String) {
        self.registry = registry
        self.name = name
        self.unit = unit
        self.help = help
    }

    func set(_ value: Double?) {
        gauge.withLock { gauge in
            switch (value, gauge) {
            case (let value?, let existing?):
                existing.set(to: value)
            case (let value?, nil):
                let made = registry.makeGauge(descriptor: describe(name, unit: unit, help))
                made.set(to: value)
                gauge = made
            case (nil, let existing?):
                registry.unregisterGauge(existing)
                gauge = nil
            case (nil, nil):
                break
            }
        }
    }
}
