import Foundation
import SyncEngine
import SyncModel
import SyncServer
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite struct MetricsServerTests {
    static let now = Date(timeIntervalSince1970: 1_767_323_045)

    static func status(
        state: String = "online", dataAsOf: String? = FHIRInstant.format(1_767_323_045 - 90), lastError: String? = nil
    ) -> StatusReport {
        StatusReport(
            state: state, resources: 1234, initialSyncComplete: true, lastSyncAt: FHIRInstant.format(1_767_323_000),
            dataAsOf: dataAsOf, lastError: lastError, heldChanges: 3, heldRegressions: 1, heldMassDeletions: 2,
            rejectedResources: 5, keySource: "file")
    }

    /// Runs `body` against a server on a free loopback port, and stops the server afterwards.
    static func withServer(
        host: String = "127.0.0.1", metrics: SyncMetrics, refresh: @escaping @Sendable () -> Void = {},
        _ body: (MetricsServer) async throws -> Void
    ) async throws {
        let server = try await MetricsServer.start(host: host, port: 0, registry: metrics.registry, refresh: refresh)
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func servesTheExpositionAfterUpdate() async throws {
        let metrics = SyncMetrics()
        let http = Mutex(SyncMetrics.HTTPTotals(responsesByClass: ["2xx": 10, "4xx": 1, "5xx": 2], retries: 2))
        let refreshes = Mutex(0)
        let refresh: @Sendable () -> Void = {
            refreshes.withLock { $0 += 1 }
            metrics.update(
                from: Self.status(), http: http.withLock { $0 }, outboxDepth: 4, conflicts: 1, now: Self.now)
        }
        try await Self.withServer(metrics: metrics, refresh: refresh) { server in
            #expect(server.port > 0)
            #expect(server.host == "127.0.0.1")

            let first = try HTTPExchange.get(port: server.port, path: "/metrics")
            #expect(first.status == 200)
            #expect(first.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(refreshes.withLock { $0 } == 1)
            let body = first.body
            #expect(Exposition.value(body, "ehr_sync_resources") == 1234)
            #expect(Exposition.value(body, "ehr_sync_lag_seconds") == 90)
            #expect(Exposition.value(body, "ehr_sync_data_as_of_timestamp_seconds") == 1_767_322_955)
            #expect(Exposition.value(body, "ehr_sync_last_sync_timestamp_seconds") == 1_767_323_000)
            #expect(Exposition.value(body, "ehr_sync_outbox_depth") == 4)
            #expect(Exposition.value(body, "ehr_sync_conflicts") == 1)
            #expect(Exposition.value(body, "ehr_sync_held_changes") == 3)
            #expect(Exposition.value(body, "ehr_sync_held_regressions") == 1)
            #expect(Exposition.value(body, "ehr_sync_held_mass_deletions") == 2)
            #expect(Exposition.value(body, "ehr_sync_rejected_resources") == 5)
            #expect(Exposition.value(body, "ehr_sync_initial_sync_complete") == 1)
            #expect(Exposition.value(body, #"ehr_sync_http_responses_total{class="2xx"}"#) == 10)
            #expect(Exposition.value(body, #"ehr_sync_http_responses_total{class="4xx"}"#) == 1)
            #expect(Exposition.value(body, #"ehr_sync_http_responses_total{class="5xx"}"#) == 2)
            #expect(Exposition.value(body, #"ehr_sync_http_responses_total{class="3xx"}"#) == 0)
            #expect(Exposition.value(body, "ehr_sync_http_retries_total") == 2)
            #expect(Exposition.value(body, "ehr_sync_http_network_errors_total") == 0)
            #expect(Exposition.value(body, #"ehr_sync_build_info{version="\#(EHRSync.version)"}"#) == 1)
            for state in SyncMetrics.states {
                #expect(Exposition.value(body, #"ehr_sync_state{state="\#(state)"}"#) == (state == "online" ? 1 : 0))
            }
            #expect(body.contains("# TYPE ehr_sync_http_responses_total counter"))
            #expect(body.contains("# TYPE ehr_sync_lag_seconds gauge"))
            #expect(body.contains("# HELP ehr_sync_resources "))
            // Absent while the EHR answers.
            #expect(!body.contains("ehr_sync_failing_since_timestamp_seconds"))

            // Each scrape refreshes; counters follow the client's running totals.
            http.withLock { $0.responsesByClass["2xx"] = 25 }
            let second = try HTTPExchange.get(port: server.port, path: "/metrics?name[]=ignored")
            #expect(second.status == 200)
            #expect(refreshes.withLock { $0 } == 2)
            #expect(Exposition.value(second.body, #"ehr_sync_http_responses_total{class="2xx"}"#) == 25)
        }
    }

    @Test func otherPathsAre404AndOtherMethods405() async throws {
        let metrics = SyncMetrics()
        let refreshes = Mutex(0)
        let refresh: @Sendable () -> Void = { refreshes.withLock { $0 += 1 } }
        try await Self.withServer(metrics: metrics, refresh: refresh) { server in
            for path in ["/", "/metrics/", "/metricsx", "/Patient/123", "/healthz"] {
                let response = try HTTPExchange.get(port: server.port, path: path)
                #expect(response.status == 404, "\(path)")
                #expect(!response.body.contains("ehr_sync"))
            }
            for method in ["POST", "PUT", "DELETE"] {
                let response = try HTTPExchange.exchange(
                    port: server.port,
                    "\(method) /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
                #expect(response.first?.status == 405, "\(method)")
                #expect(response.first?.headers["allow"] == "GET")
            }
        }
        #expect(refreshes.withLock { $0 } == 0)
    }

    @Test func answersPipelinedRequestsOnOneConnection() async throws {
        let metrics = SyncMetrics()
        try await Self.withServer(host: "localhost", metrics: metrics) { server in
            #expect(server.host == "127.0.0.1")
            let responses = try HTTPExchange.exchange(
                port: server.port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    + "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    + "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(responses.map(\.status) == [200, 404, 200])
            #expect(responses.last.map { $0.body.contains("ehr_sync_resources ") } == true)
        }
    }

    @Test(arguments: ["0.0.0.0", "::", "[::]", "192.0.2.10", "10.0.0.1", "::ffff:192.0.2.10", "example.com", ""])
    func refusesNonLoopbackHosts(host: String) async throws {
        let metrics = SyncMetrics()
        let error = await #expect(throws: MetricsServerError.self) {
            _ = try await MetricsServer.start(host: host, port: 0, registry: metrics.registry) {}
        }
        #expect(error?.description.contains("loopback") == true)
    }

    @Test func refusesAnOutOfRangePort() async throws {
        let metrics = SyncMetrics()
        await #expect(throws: MetricsServerError.self) {
            _ = try await MetricsServer.start(host: "127.0.0.1", port: 70_000, registry: metrics.registry) {}
        }
    }

    @Test func reportsAPortInUse() async throws {
        let metrics = SyncMetrics()
        try await Self.withServer(metrics: metrics) { first in
            let error = await #expect(throws: MetricsServerError.self) {
                _ = try await MetricsServer.start(host: "127.0.0.1", port: first.port, registry: metrics.registry) {}
            }
            #expect(error?.description.contains("127.0.0.1:\(first.port)") == true)
        }
    }

    @Test func parsesListenAddresses() throws {
        for (text, host) in [("127.0.0.1:9464", "127.0.0.1"), ("[::1]:9464", "::1"), ("localhost:9464", "localhost")] {
            let parsed = try MetricsServer.parseListen(text)
            #expect(parsed.host == host && parsed.port == 9464, "\(text)")
        }
        for bad in [
            "127.0.0.1", "::1:9464", "127.0.0.1:", ":9464", "127.0.0.1:0", "127.0.0.1:65536", "[::1]9464",
            "0.0.0.0:9464", "192.0.2.10:9464", "[::]:9464",
        ] {
            #expect(throws: MetricsServerError.self, "\(bad)") { try MetricsServer.parseListen(bad) }
        }
    }
}

@Suite struct SyncMetricsTests {
    @Test func stateIsOneHot() {
        let metrics = SyncMetrics()
        for current in SyncMetrics.states {
            metrics.update(
                from: MetricsServerTests.status(state: current), http: .init(), outboxDepth: 0, conflicts: 0,
                now: MetricsServerTests.now)
            let body = metrics.registry.emitToString()
            for state in SyncMetrics.states {
                #expect(Exposition.value(body, #"ehr_sync_state{state="\#(state)"}"#) == (state == current ? 1 : 0))
            }
        }
        // An unknown state mints no new label value.
        metrics.update(
            from: MetricsServerTests.status(state: "weird"), http: .init(), outboxDepth: 0, conflicts: 0,
            now: MetricsServerTests.now)
        let body = metrics.registry.emitToString()
        #expect(!body.contains("weird"))
        #expect(SyncMetrics.states.allSatisfy { Exposition.value(body, #"ehr_sync_state{state="\#($0)"}"#) == 0 })
    }

    @Test func lagIsAbsentUntilThereIsACursorAndNeverNegative() {
        let metrics = SyncMetrics()
        let now = MetricsServerTests.now
        metrics.update(
            from: MetricsServerTests.status(dataAsOf: nil), http: .init(), outboxDepth: 0, conflicts: 0, now: now)
        var body = metrics.registry.emitToString()
        #expect(!body.contains("ehr_sync_lag_seconds"))
        #expect(!body.contains("ehr_sync_data_as_of_timestamp_seconds"))

        metrics.update(
            from: MetricsServerTests.status(dataAsOf: "2026-01-02T03:03:05Z"), http: .init(), outboxDepth: 0,
            conflicts: 0, now: now)
        body = metrics.registry.emitToString()
        #expect(Exposition.value(body, "ehr_sync_lag_seconds") == 60)

        // The server's clock ahead of ours.
        metrics.update(
            from: MetricsServerTests.status(dataAsOf: "2026-01-02T03:05:05Z"), http: .init(), outboxDepth: 0,
            conflicts: 0, now: now)
        #expect(Exposition.value(metrics.registry.emitToString(), "ehr_sync_lag_seconds") == 0)

        metrics.update(
            from: MetricsServerTests.status(dataAsOf: nil), http: .init(), outboxDepth: 0, conflicts: 0, now: now)
        #expect(!metrics.registry.emitToString().contains("ehr_sync_lag_seconds"))
    }

    @Test func countersFollowRunningTotalsAndRestartWithANewClient() {
        let metrics = SyncMetrics()
        let status = MetricsServerTests.status()
        func update(_ byClass: [String: Int], retries: Int = 0) -> String {
            metrics.update(
                from: status, http: .init(responsesByClass: byClass, retries: retries), outboxDepth: 0, conflicts: 0,
                now: MetricsServerTests.now)
            return metrics.registry.emitToString()
        }
        let twoXX = #"ehr_sync_http_responses_total{class="2xx"}"#
        var body = update(["2xx": 5, "0xx": 1, "6xx": 2], retries: 1)
        #expect(Exposition.value(body, twoXX) == 5)
        #expect(Exposition.value(body, #"ehr_sync_http_responses_total{class="other"}"#) == 3)
        #expect(!body.contains("0xx"))
        body = update(["2xx": 5])
        #expect(Exposition.value(body, twoXX) == 5)
        body = update(["2xx": 9], retries: 4)
        #expect(Exposition.value(body, twoXX) == 9)
        #expect(Exposition.value(body, "ehr_sync_http_retries_total") == 4)
        // Lower totals: a new client; the counter restarts from its total.
        body = update(["2xx": 2])
        #expect(Exposition.value(body, twoXX) == 2)
    }

    @Test func takesTheClientsStats() async throws {
        let client = FHIRClient(
            baseURL: URL(string: "http://127.0.0.1:9/fhir")!, rate: .init(ceiling: 10), connectTimeout: 1,
            requestTimeout: 1, logger: .init(label: "test"))
        let metrics = SyncMetrics()
        metrics.update(
            from: MetricsServerTests.status(), http: client.stats, outboxDepth: 0, conflicts: 0,
            now: MetricsServerTests.now)
        await client.shutdown()
        #expect(Exposition.value(metrics.registry.emitToString(), #"ehr_sync_http_responses_total{class="2xx"}"#) == 0)
    }

    @Test func carriesNoMessagesOrIdentifiers() {
        let metrics = SyncMetrics()
        metrics.update(
            from: MetricsServerTests.status(lastError: "Patient/pat-4711 (DUPONT Jeanne): 500"), http: .init(),
            outboxDepth: 0, conflicts: 0, now: MetricsServerTests.now)
        let body = metrics.registry.emitToString()
        #expect(!body.contains("pat-4711"))
        #expect(!body.contains("DUPONT"))
    }

    @Test func swiftMetricsInstrumentsShareTheRegistry() {
        let metrics = SyncMetrics()
        metrics.factory.makeCounter(label: "ehr_sync_test_events_total", dimensions: [("kind", "a")]).increment(by: 3)
        #expect(Exposition.value(metrics.registry.emitToString(), #"ehr_sync_test_events_total{kind="a"}"#) == 3)
    }
}

/// Reads single samples out of a text exposition.
enum Exposition {
    static func value(_ body: String, _ series: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}

/// A minimal blocking HTTP/1.1 client on a raw loopback socket.
enum HTTPExchange {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func get(port: Int, path: String) throws -> Response {
        let responses = try exchange(port: port, "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        guard responses.count == 1 else { throw Failure(description: "expected one response, got \(responses.count)") }
        return responses[0]
    }

    /// Sends `request` as is and reads until the server closes, then splits the responses.
    static func exchange(port: Int, _ request: String) throws -> [Response] {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: errno \(errno)") }
        var outgoing = Array(request.utf8)[...]
        while !outgoing.isEmpty {
            let sent = outgoing.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard sent > 0 else { throw Failure(description: "send: errno \(errno)") }
            outgoing = outgoing.dropFirst(sent)
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw Failure(description: "recv: errno \(errno) (timeout?)") }
            received.append(contentsOf: chunk[0..<count])
        }
        return try parse(received[...])
    }

    /// Splits responses framed by Content-Length.
    static func parse(_ bytes: ArraySlice<UInt8>) throws -> [Response] {
        var rest = bytes
        var responses: [Response] = []
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while !rest.isEmpty {
            guard let end = rest.indices.first(where: { rest[$0...].starts(with: separator) }) else {
                throw Failure(description: "truncated response head")
            }
            let head = String(decoding: rest[rest.startIndex..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                throw Failure(description: "bad status line in \(head)")
            }
            var headers: [String: String] = [:]
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = end + separator.count
            guard rest.endIndex - bodyStart >= length else { throw Failure(description: "truncated body") }
            let body = String(decoding: rest[bodyStart..<(bodyStart + length)], as: UTF8.self)
            responses.append(Response(status: status, headers: headers, body: body))
            rest = rest[(bodyStart + length)...]
        }
        return responses
    }
}
