import AsyncHTTPClient
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import SyncModel
import SyncStore
import Synchronization

/// HTTP access to the hosted EHR's FHIR API: keep-alive, gzip, `User-Agent`, a request
/// rate limit, per-request timeouts, and retries with exponential backoff and full jitter
/// on network errors, 5xx and 429, honouring `Retry-After`.
///
/// Credentials are only ever sent to the configured base URL's origin.
public final class FHIRClient: FHIRTransport {
    public typealias Response = FHIRResponse

    /// Counters by outcome, for status and metrics.
    public struct Stats: Sendable, Equatable {
        public var requests = 0
        public var byClass: [String: Int] = [:]
        public var retries = 0
        public var networkErrors = 0
        public var bytes = 0
    }

    public let baseURL: String
    public let origin: String
    let http: HTTPClient
    /// The request rate, adapted to the EHR's answers (one budget for pull and replay).
    let rateControl: Mutex<RateController>
    let backoff: Backoff
    let requestTimeout: TimeAmount
    let authorization: (@Sendable () async throws -> String?)?
    /// Forgets the credentials `authorization` gave, after the EHR answered 401 to them
    /// (an access token expired before its announced lifetime, mid-run).
    let reauthorize: (@Sendable () async -> Void)?
    let logger: Logger
    let statsBox = Mutex(Stats())
    /// Called at every request attempt and streamed chunk: a sign of life for watchdogs.
    let activity: @Sendable () -> Void
    /// Called with the outcome of every attempt, for outage detection.
    let observe: @Sendable (OutageStateMachine.Event) -> Void

    public init(
        baseURL: URL, rate: RateController.Settings, connectTimeout: Double, requestTimeout: Double,
        backoff: Backoff = Backoff(), logger: Logger, authorization: (@Sendable () async throws -> String?)? = nil,
        reauthorize: (@Sendable () async -> Void)? = nil, activity: @escaping @Sendable () -> Void = {},
        observe: @escaping @Sendable (OutageStateMachine.Event) -> Void = { _ in }
    ) {
        self.activity = activity
        self.observe = observe
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.origin = Self.origin(of: base) ?? base
        var config = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(
                connect: .milliseconds(Int64(connectTimeout * 1000)), read: .milliseconds(Int64(requestTimeout * 1000))),
            decompression: .enabled(limit: .ratio(100)))
        config.connectionPool = .init(idleTimeout: .seconds(60))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.rateControl = Mutex(RateController(settings: rate))
        self.backoff = backoff
        self.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
        self.authorization = authorization
        self.reauthorize = reauthorize
        self.logger = logger
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    public var stats: Stats { statsBox.withLock { $0 } }

    /// Resolves a path (relative to the base) or an absolute URL from the server.
    public func url(_ pathOrURL: String) -> String {
        if pathOrURL.hasPrefix("http://") || pathOrURL.hasPrefix("https://") { return pathOrURL }
        return baseURL + (pathOrURL.hasPrefix("/") ? "" : "/") + pathOrURL
    }

    /// A label for logs: the first path segment after the base (a resource type, `_history`
    /// or an operation), never an id or a query.
    func route(_ url: String) -> String {
        var rest = url.hasPrefix(baseURL) ? String(url.dropFirst(baseURL.count)) : (URL(string: url)?.path ?? "")
        if let q = rest.firstIndex(of: "?") { rest = String(rest[..<q]) }
        let segments = rest.split(separator: "/")
        guard let first = segments.first else { return "base" }
        let label = String(first)
        if FHIRID.isValidType(label) || label.hasPrefix("_") || label.hasPrefix("$") {
            if segments.count >= 3, segments[2].hasPrefix("$") { return "\(label)/\(segments[2])" }
            return segments.count > 1 && !label.hasPrefix("$") ? "\(label)/…" : label
        }
        return "other"
    }

    /// Any request, retried with backoff on network errors, 5xx and 429.
    /// Only for requests that are safe to repeat: reads, and writes made idempotent by
    /// their conditions (`If-None-Exist`, `If-Match`).
    public func send(
        _ method: String, _ pathOrURL: String, accept: String, headers: [(String, String)], body: Data?,
        maxBytes: Int, sendCredentials: Bool, probe: Bool
    ) async throws(RemoteError) -> Response {
        let target = url(pathOrURL)
        let route = route(target)
        let sameOrigin = Self.origin(of: target) == origin
        if !sameOrigin && sendCredentials { throw .foreignOrigin(route: route) }
        var attempt = 0
        var reauthorized = false
        var pushBacks = 0
        var firstPushBack: ContinuousClock.Instant?
        let paced = rateControl.withLock { $0.settings.policy == .adaptive }
        while true {
            var pushedBack = false
            attempt += 1
            activity()
            try await throttle()
            let started = ContinuousClock.now
            var retryAfter: Double?
            var reason: String
            do {
                var request = HTTPClientRequest(url: target)
                request.method = HTTPMethod(rawValue: method)
                if let body {
                    request.body = .bytes(ByteBuffer(bytes: body))
                    request.headers.add(name: "Content-Type", value: "application/fhir+json")
                }
                request.headers.add(name: "Accept", value: accept)
                request.headers.add(name: "Accept-Encoding", value: "gzip")
                request.headers.add(name: "User-Agent", value: "ehr-sync/\(EHRSync.version)")
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                var sentCredentials = false
                if sameOrigin, let auth = authorization, let value = try await auth() {
                    request.headers.add(name: "Authorization", value: value)
                    sentCredentials = true
                }
                let response = try await http.execute(request, timeout: requestTimeout)
                let status = Int(response.status.code)
                if status == 401, sentCredentials, !reauthorized, let reauthorize {
                    // The token expired early (or was revoked): a new one, then the same
                    // request again, once; the run goes on where it was.
                    reauthorized = true
                    _ = try? await response.body.collect(upTo: 1 << 20)
                    logger.info("access token refused (401); asking for a new one", metadata: ["route": "\(route)"])
                    await reauthorize()
                    attempt -= 1
                    continue
                }
                var headerMap: [String: String] = [:]
                for header in response.headers { headerMap[header.name.lowercased()] = header.value }
                let buffer = try await response.body.collect(upTo: maxBytes)
                let body = Data(buffer.readableBytesView)
                record(status: status, bytes: body.count)
                let elapsed = started.duration(to: .now)
                logger.debug(
                    "http", metadata: ["route": "\(route)", "status": "\(status)", "ms": "\(elapsed.milliseconds)"])
                let latency = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if status < 500 && status != 429 {
                    // Writes are small and alike: their time is the server's queue. A page's
                    // time is mostly its size.
                    learn(.answered(latency: method == "GET" ? nil : latency), sentAt: started)
                    observe(probe ? .probeSucceeded : .succeeded)
                    return Response(status: status, headers: headerMap, body: body)
                }
                let date = headerMap["date"].flatMap(HTTPDate.parse) ?? Date().timeIntervalSince1970
                retryAfter = RetryAfter.seconds(headerMap["retry-after"], now: date)
                reason = "HTTP \(status)"
                pushedBack = status == 429 || (status == 503 && retryAfter != nil)
                learn(.overloaded(retryAfter: retryAfter), sentAt: started)
                let failure: OutageStateMachine.Failure =
                    status == 503
                    ? .unavailable(retryAfter: retryAfter)
                    : status == 429 ? .tooManyRequests(retryAfter: retryAfter) : .serverError(status)
                observe(probe ? .probeFailed(failure) : .failed(failure))
            } catch let error as RemoteError {
                throw error
            } catch is CancellationError {
                throw .cancelled
            } catch {
                if Task.isCancelled { throw .cancelled }
                statsBox.withLock { $0.networkErrors += 1 }
                reason = Self.describe(error)
                let failure = Self.classify(error)
                learn(failure == .timeout ? .timeout : .unreachable, sentAt: started)
                observe(probe ? .probeFailed(failure) : .failed(failure))
            }
            if probe { throw .unavailable(route: route, reason: reason) }
            var delay: Double?
            if paced, pushedBack, pushBacks < Self.maxPushBacks,
                firstPushBack.map({ $0.duration(to: .now) < Self.pushBackBudget }) ?? true
            {
                if firstPushBack == nil { firstPushBack = started }
                // A server that is up but busy (429, or 503 with a Retry-After): the rate
                // controller paces the retry (its rate dropped, the Retry-After is its floor);
                // no exponential wait on top, which would leave a fleet idle behind it.
                pushBacks += 1
                attempt -= 1
                delay = Double.random(in: 0..<0.25)
            } else {
                delay = backoff.delay(attempt: attempt, retryAfter: retryAfter, unit: Double.random(in: 0..<1))
            }
            guard let delay else {
                logger.warning(
                    "giving up", metadata: ["route": "\(route)", "attempts": "\(attempt)", "reason": "\(reason)"])
                throw .unavailable(route: route, reason: reason)
            }
            statsBox.withLock { $0.retries += 1 }
            logger.info(
                "retrying",
                metadata: [
                    "route": "\(route)", "reason": "\(reason)", "attempt": "\(attempt)",
                    "wait_s": "\(String(format: "%.2f", delay))",
                ])
            do {
                try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            } catch {
                throw .cancelled
            }
        }
    }

    /// Streams a response body line by line (NDJSON) in bounded memory, handing `batchSize`
    /// lines at a time to `consume`. No retries: the caller resumes from what it committed.
    public func streamLines(
        _ pathOrURL: String, sendCredentials: Bool = true, maxLineBytes: Int, batchSize: Int,
        consume: ([Data]) async throws -> Void
    ) async throws -> Int {
        let target = url(pathOrURL)
        let route = route(target)
        let sameOrigin = Self.origin(of: target) == origin
        if !sameOrigin && sendCredentials { throw RemoteError.foreignOrigin(route: route) }
        try await throttle()
        var request = HTTPClientRequest(url: target)
        request.headers.add(name: "Accept", value: "application/fhir+ndjson")
        request.headers.add(name: "Accept-Encoding", value: "gzip")
        request.headers.add(name: "User-Agent", value: "ehr-sync/\(EHRSync.version)")
        if sameOrigin && sendCredentials, let auth = authorization, let value = try await auth() {
            request.headers.add(name: "Authorization", value: value)
        }
        let response = try await http.execute(request, timeout: .hours(6))
        let status = Int(response.status.code)
        record(status: status, bytes: 0)
        if status == 401, sameOrigin && sendCredentials, let reauthorize {
            // The caller resumes from what it committed, with a new token.
            await reauthorize()
            throw RemoteError.unavailable(route: route, reason: "access token refused (401); a new one is requested")
        }
        guard status == 200 else { throw RemoteError.status(route: route, code: status) }
        var pending = ByteBuffer()
        var batch: [Data] = []
        var lines = 0
        var received = 0
        for try await var chunk in response.body {
            activity()
            received += chunk.readableBytes
            pending.writeBuffer(&chunk)
            // Split at newlines with memchr on the buffer's bytes: one copy per line.
            while let line = pending.readLine() {
                if !Self.isBlank(line) {
                    batch.append(line)
                    lines += 1
                }
                if batch.count >= batchSize {
                    try await consume(batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            pending.discardReadBytes()
            if pending.readableBytes > maxLineBytes {
                throw RemoteError.badResponse(route: route, reason: "an NDJSON line exceeds \(maxLineBytes) bytes")
            }
        }
        if pending.readableBytes > 0 {
            let last = Data(pending.readableBytesView)
            if !Self.isBlank(last) {
                batch.append(last)
                lines += 1
            }
        }
        if !batch.isEmpty { try await consume(batch) }
        statsBox.withLock { $0.bytes += received }
        return lines
    }

    /// An empty line, or one of white space only (NDJSON allows a trailing `\r`).
    static func isBlank(_ line: Data) -> Bool {
        line.count <= 2 && line.allSatisfy { $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }
    }

    /// The current request rate (requests a second) and whether it is in a slow start.
    public var currentRate: (rate: Double, slowStart: Bool) {
        rateControl.withLock { ($0.rate, $0.inSlowStart) }
    }

    /// Back from an outage: the rate starts slow again (the whole fleet is coming back).
    public func restartRate() {
        rateControl.withLock { $0.record(.unreachable, now: Double(ContinuousClock.now.seconds)) }
    }

    /// Retries of one request the server pushed back (429) before giving up, and for how long
    /// at most (then the cycle ends and the next one tries again).
    static let maxPushBacks = 40
    static let pushBackBudget: Duration = .seconds(180)

    private func learn(_ outcome: RateController.Outcome, sentAt: ContinuousClock.Instant) {
        let now = Double(ContinuousClock.now.seconds)
        let sent = Double(sentAt.seconds)
        rateControl.withLock { $0.record(outcome, now: now, sentAt: sent) }
    }

    private func throttle() async throws(RemoteError) {
        let now = ContinuousClock.now
        let seconds = Double(now.seconds)
        let wait = rateControl.withLock { $0.delay(now: seconds) }
        if wait > 0 {
            do {
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            } catch {
                throw .cancelled
            }
        }
    }

    private func record(status: Int, bytes: Int) {
        statsBox.withLock {
            $0.requests += 1
            $0.byClass["\(status / 100)xx", default: 0] += 1
            $0.bytes += bytes
        }
    }

    /// Network failures as outage evidence: timeouts apart, everything that kept us from a
    /// response counts as a refused connection.
    static func classify(_ error: any Error) -> OutageStateMachine.Failure {
        if let e = error as? HTTPClientError,
            e == .readTimeout || e == .connectTimeout || e == .deadlineExceeded || e == .writeTimeout
        {
            return .timeout
        }
        return .connectionRefused
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            return "\(e)"
        }
        if let e = error as? NIOConnectionError {
            return "connection failed (\(e.connectionErrors.first.map { "\($0.error)" } ?? "refused"))"
        }
        return String(describing: type(of: error)) + ": " + "\(error)".prefix(120)
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

extension ContinuousClock.Instant {
    /// Seconds since the process's first use of this property (monotonic).
    var seconds: Double {
        let c = Self.referenceOrigin.duration(to: self).components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    private static let referenceOrigin = ContinuousClock.now
}

extension ByteBuffer {
    /// Reads up to the next newline (consumed, not returned); nil when none is buffered.
    mutating func readLine() -> Data? {
        let found: Data? = withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress, let hit = memchr(base, 0x0A, raw.count) else { return nil }
            return Data(bytes: base, count: base.distance(to: UnsafeRawPointer(hit)))
        }
        guard let line = found else { return nil }
        moveReaderIndex(forwardBy: line.count + 1)
        return line
    }
}
