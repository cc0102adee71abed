// FaultProxy: a fault-injecting HTTP/1.1 reverse proxy for integration tests.
//
// Tests put it between the sync daemon and a real FHIR server on loopback:
//
//     let proxy = try await FaultProxy.start(upstreamPort: fhirServerPort)
//     // point the daemon at proxy.baseURL instead of the server
//     proxy.setMode(.status(503, retryAfter: 5))          // standing fault
//     proxy.inject(.resetMidBody(afterBytes: 4096), times: 1) { $0.uri.contains("_getpages") }
//     ...
//     try await proxy.stop()
//
// The client talks to the proxy exactly as it would to the server. Requests and responses
// are buffered whole in memory (fine for test bodies of tens of MB), then forwarded; faults
// are applied per request: the first queued one-shot injection whose predicate matches,
// otherwise the standing mode. Every request is logged in `requests`.
//
// Implementation notes (see FaultProxy+Handlers.swift for the channel handlers):
// - One upstream connection is paired with each client connection, opened lazily and kept
//   alive while the upstream allows it; so N concurrent client connections give N upstream
//   connections, and sequential requests on one client connection reuse one upstream
//   connection.
// - All handler work for a client connection, and its upstream connection, runs on the
//   client channel's event loop, so the handlers need no locks. Shared state (modes, log,
//   registry of open channels, listener) lives in a `Mutex` in this class.

public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

// MARK: - Public types

/// A fault the proxy applies to a request.
public enum FaultMode: Sendable, Equatable, CustomStringConvertible {
    /// Forward the request upstream and relay the response unchanged (apart from URL
    /// rewriting, if enabled, and framing headers).
    case passThrough
    /// Standing mode: the listening socket is closed, so new connections get ECONNREFUSED,
    /// and idle keep-alive connections are closed (busy ones are closed once their current
    /// response is done). Listening resumes on the same port when the mode changes.
    /// As a one-shot `inject`ed fault, or for a request that still arrives on an open
    /// connection during the outage: the connection is reset (RST) without any response.
    case refuseConnections
    /// Answer directly with this status and a small OperationOutcome JSON body, with a
    /// `Retry-After` header if given; the upstream is not contacted.
    case status(Int, retryAfter: Int? = nil)
    /// Forward the request after this delay.
    case latency(milliseconds: Int)
    /// Forward, then send the upstream's response head (true Content-Length) and only the
    /// first N body bytes, then abort the connection with a TCP RST (SO_LINGER 0).
    case resetMidBody(afterBytes: Int)
    /// Same as `resetMidBody` but closes the connection cleanly (FIN) after N body bytes.
    case truncatedBody(afterBytes: Int)
    /// Read the request and never answer; the connection stays open until the client gives
    /// up or the proxy is stopped.
    case hang
    /// Answer directly with this status and body (a misbehaving server: a looping Bundle, an
    /// OperationOutcome where a Bundle belongs, hostile resources); the upstream is not contacted.
    case respond(status: Int, contentType: String, body: Data)
    /// Forward the request with this target instead of the client's (a server that caps
    /// `_count`, or ignores a parameter).
    case forward(uri: String)

    public var description: String {
        switch self {
        case .passThrough: "passThrough"
        case .refuseConnections: "refuseConnections"
        case .status(let code, let retryAfter):
            retryAfter.map { "status(\(code), retryAfter: \($0))" } ?? "status(\(code))"
        case .latency(let ms): "latency(\(ms) ms)"
        case .resetMidBody(let n): "resetMidBody(afterBytes: \(n))"
        case .truncatedBody(let n): "truncatedBody(afterBytes: \(n))"
        case .hang: "hang"
        case .respond(let status, _, let body): "respond(\(status), \(body.count) bytes)"
        case .forward(let uri): "forward(\(uri))"
        }
    }
}

/// A request as seen by `inject(_:times:when:)` predicates.
public struct ProxyRequest: Sendable {
    public let method: String
    /// The request target as sent by the client, e.g. `/fhir/Patient?_count=50`.
    public let uri: String
    public let headers: [(String, String)]

    public init(method: String, uri: String, headers: [(String, String)]) {
        self.method = method
        self.uri = uri
        self.headers = headers
    }

    /// The first value of the named header (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The path part of `uri` (without the query string).
    public var path: Substring {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }
}

/// One entry of the proxy's request log.
public struct ProxyRecord: Sendable, CustomStringConvertible {
    /// What finally happened to the request.
    public enum Outcome: Sendable, Equatable {
        /// Still being handled (waiting for the upstream, delayed, ...).
        case inFlight
        /// A complete response was sent (relayed, injected status, or 502).
        case responded
        /// Head and part of the body sent, then the connection was reset (RST).
        case reset
        /// Head and part of the body sent, then the connection was closed (FIN).
        case truncated
        /// Never answered (`hang`); `finished` is set when the connection closes.
        case hung
        /// The connection was reset without any response (`refuseConnections`).
        case dropped
        /// The client closed the connection before the response was sent.
        case clientClosed
    }

    public let id: Int
    public let method: String
    public let uri: String
    /// The fault applied to this request (`.passThrough` if none).
    public let fault: FaultMode
    /// True if `fault` came from `inject(...)` rather than the standing mode.
    public let injected: Bool
    /// When the complete request had been received (monotonic).
    public let received: ContinuousClock.Instant
    /// The status sent to the client, if a response head was sent.
    public internal(set) var status: Int?
    /// The status the upstream answered with; nil if it was not contacted or failed.
    public internal(set) var upstreamStatus: Int?
    public internal(set) var outcome: Outcome
    /// Response body bytes written to the client.
    public internal(set) var bodyBytesSent: Int
    /// When the response was finished (last byte written, connection reset/closed).
    public internal(set) var finished: ContinuousClock.Instant?
    /// Why the proxy answered 502, if it did.
    public internal(set) var error: String?

    /// `finished - received`, once finished.
    public var duration: Duration? { finished.map { $0 - received } }

    public var description: String {
        "#\(id) \(method) \(uri) fault=\(fault)\(injected ? " (injected)" : "") "
            + "status=\(status.map(String.init) ?? "-") outcome=\(outcome)"
            + (error.map { " error=\($0)" } ?? "")
    }
}

// MARK: - FaultProxy

public final class FaultProxy: Sendable {
    public let upstreamHost: String
    public let upstreamPort: Int
    /// Whether `http://<upstream>` URLs in response bodies and Location/Content-Location
    /// headers are rewritten to point at the proxy (see `start`).
    public let rewriteUpstreamURLs: Bool

    let group: MultiThreadedEventLoopGroup
    /// All mutable shared state.
    let state: Mutex<State>
    /// Serialises listener transitions (close / rebind) in `setMode`, which block until the
    /// listening socket is really closed or bound again.
    private let listenerTransition = Mutex<Void>(())

    struct Injection: Sendable {
        let id: Int
        let mode: FaultMode
        var remaining: Int
        let predicate: (@Sendable (ProxyRequest) -> Bool)?
    }

    struct Connection: Sendable {
        let channel: any Channel
        var busy: Bool
    }

    struct State: Sendable {
        var port = 0
        var standing: FaultMode = .passThrough
        /// How the emulated server differs from the upstream (consulted after injections).
        var personality: (@Sendable (ProxyRequest) -> FaultMode?)?
        var injections: [Injection] = []
        var nextInjectionID = 0
        var log: [ProxyRecord] = []
        /// Record id -> index in `log` (cleared by resetLog, so late updates are dropped).
        var logIndex: [Int: Int] = [:]
        var nextRecordID = 0
        var listener: (any Channel)?
        var listenerError: String?
        var connections: [ObjectIdentifier: Connection] = [:]
        var upstreamChannels: [ObjectIdentifier: any Channel] = [:]
        var stopped = false

        var refusing: Bool { standing == .refuseConnections }
    }

    private init(upstreamHost: String, upstreamPort: Int, rewriteUpstreamURLs: Bool) {
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        self.rewriteUpstreamURLs = rewriteUpstreamURLs
        self.group = MultiThreadedEventLoopGroup.singleton
        self.state = Mutex(State())
    }

    /// Starts a proxy listening on 127.0.0.1:`listenPort` (0 = an ephemeral port) that
    /// forwards to `upstreamHost`:`upstreamPort`.
    ///
    /// - Parameter rewriteUpstreamURLs: rewrite `http://<upstreamHost>:<upstreamPort>` (and,
    ///   for a loopback upstream, both `127.0.0.1` and `localhost` spellings) in textual
    ///   response bodies and in `Location`/`Content-Location` headers to the proxy's own
    ///   address (as given by the client's `Host` header), fixing Content-Length, so that
    ///   follow-up requests (Bundle `link.next`, ...) keep flowing through the proxy. When on,
    ///   `Accept-Encoding` is removed from requests so the upstream answers uncompressed.
    public static func start(
        upstreamHost: String = "127.0.0.1",
        upstreamPort: Int,
        listenPort: Int = 0,
        rewriteUpstreamURLs: Bool = true
    ) async throws -> FaultProxy {
        let proxy = FaultProxy(
            upstreamHost: upstreamHost,
            upstreamPort: upstreamPort,
            rewriteUpstreamURLs: rewriteUpstreamURLs
        )
        let listener = try await proxy.makeServerBootstrap()
            .bind(host: "127.0.0.1", port: listenPort).get()
        let port = listener.localAddress?.port ?? listenPort
        proxy.state.withLock {
            $0.port = port
            $0.listener = listener
        }
        return proxy
    }

    /// The port the proxy listens on (on 127.0.0.1); stays the same across
    /// `refuseConnections` outages.
    public var port: Int { state.withLock { $0.port } }

    /// `http://127.0.0.1:<port>`
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `baseURL` + `path` (a leading "/" is added if missing).
    public func url(_ path: String) -> String {
        path.hasPrefix("/") ? baseURL + path : baseURL + "/" + path
    }

    /// The standing mode, applied to every request not matched by a queued injection.
    public var mode: FaultMode { state.withLock { $0.standing } }

    /// Sets the standing mode for all following requests until changed.
    ///
    /// Switching to `.refuseConnections` returns only once the listening socket is closed and
    /// idle client connections are closed, so a connection attempted afterwards is refused.
    /// Switching away from it returns once the proxy listens again on the same port.
    /// (When called on an event loop thread it cannot block; the transition then completes
    /// asynchronously.)
    public func setMode(_ mode: FaultMode) {
        listenerTransition.withLock { _ in
            enum Transition {
                case none
                case stopListening(listener: (any Channel)?, idle: [any Channel])
                case listenAgain(port: Int)
            }
            let transition: Transition = state.withLock { s in
                guard !s.stopped else { return .none }
                let wasRefusing = s.refusing
                s.standing = mode
                if s.refusing && !wasRefusing {
                    let listener = s.listener
                    s.listener = nil
                    var idle: [any Channel] = []
                    for (key, connection) in s.connections where !connection.busy {
                        idle.append(connection.channel)
                        s.connections[key] = nil
                    }
                    return .stopListening(listener: listener, idle: idle)
                }
                if !s.refusing && wasRefusing {
                    return .listenAgain(port: s.port)
                }
                return .none
            }

            let canBlock = MultiThreadedEventLoopGroup.currentEventLoop == nil
            switch transition {
            case .none:
                break
            case .stopListening(let listener, let idle):
                let closing = ([listener].compactMap { $0 } + idle).map { $0.close() }
                if canBlock {
                    for future in closing { try? future.wait() }
                }
            case .listenAgain(let port):
                if canBlock {
                    relisten(port: port, attemptsLeft: 5)
                } else {
                    makeServerBootstrap().bind(host: "127.0.0.1", port: port).whenComplete {
                        self.installListener($0)
                    }
                }
            }
        }
    }

    /// Synchronous rebind of the listening socket; retries a few times if the port is
    /// momentarily unavailable.
    private func relisten(port: Int, attemptsLeft: Int) {
        let result = Result { try makeServerBootstrap().bind(host: "127.0.0.1", port: port).wait() }
        if case .failure = result, attemptsLeft > 1 {
            relisten(port: port, attemptsLeft: attemptsLeft - 1)
            return
        }
        installListener(result)
    }

    private func installListener(_ result: Result<any Channel, any Error>) {
        switch result {
        case .success(let channel):
            let keep = state.withLock { s in
                guard !s.stopped, !s.refusing else { return false }
                s.listener = channel
                s.listenerError = nil
                return true
            }
            if !keep { channel.close(promise: nil) }
        case .failure(let error):
            state.withLock { $0.listenerError = "rebinding port failed: \(error)" }
        }
    }

    /// Set if listening could not be resumed after a `refuseConnections` outage.
    public var listenerError: String? { state.withLock { $0.listenerError } }

    /// Queues a one-shot fault, applied (ahead of the standing mode) to the next `times`
    /// requests for which `when` returns true (all requests if nil). Injections are
    /// consulted in the order they were queued. The predicate runs on a NIO thread and must
    /// not call back into the proxy.
    public func inject(
        _ mode: FaultMode,
        times: Int = 1,
        when predicate: (@Sendable (ProxyRequest) -> Bool)? = nil
    ) {
        guard times > 0 else { return }
        state.withLock { s in
            s.injections.append(
                Injection(id: s.nextInjectionID, mode: mode, remaining: times, predicate: predicate)
            )
            s.nextInjectionID += 1
        }
    }

    /// The number of queued one-shot faults not yet applied (summed over `times`).
    public var pendingInjections: Int {
        state.withLock { $0.injections.reduce(0) { $0 + $1.remaining } }
    }

    /// Makes the proxy behave like another server: `rule` answers a request the way that
    /// server would (a refusal, a rewritten target), or nil to forward it unchanged. One-shot
    /// injections still come first; nil removes the personality.
    public func setPersonality(_ rule: (@Sendable (ProxyRequest) -> FaultMode?)?) {
        state.withLock { $0.personality = rule }
    }

    /// Drops all queued one-shot faults.
    public func clearInjections() {
        state.withLock { $0.injections.removeAll() }
    }

    /// Log of every request seen since start (or the last `resetLog()`), in arrival order.
    public var requests: [ProxyRecord] { state.withLock { $0.log } }

    /// The log, once no logged request is still `.inFlight` (or when `timeout` passes).
    /// Useful right after a client call returns: the proxy may finish its bookkeeping for
    /// the last response a moment after the client has read it.
    public func settledRequests(timeout: Duration = .seconds(5)) async -> [ProxyRecord] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let log = requests
            if !log.contains(where: { $0.outcome == .inFlight }) || ContinuousClock.now >= deadline {
                return log
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    public func resetLog() {
        state.withLock {
            $0.log.removeAll()
            $0.logIndex.removeAll()
        }
    }

    /// Stops listening and closes every client and upstream connection (including hung
    /// ones). The proxy cannot be restarted; start a new one.
    public func stop() async throws {
        let channels: [any Channel] = state.withLock { s in
            s.stopped = true
            var all: [any Channel] = []
            if let listener = s.listener { all.append(listener) }
            s.listener = nil
            all += s.connections.values.map(\.channel)
            all += s.upstreamChannels.values
            s.connections.removeAll()
            s.upstreamChannels.removeAll()
            s.injections.removeAll()
            return all
        }
        for channel in channels {
            channel.close(promise: nil)
        }
        for channel in channels {
            try await channel.closeFuture.get()
        }
    }

    // MARK: Internal API for the channel handlers

    func makeServerBootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: true
                    )
                    try channel.pipeline.syncOperations.addHandler(ProxyServerHandler(proxy: self))
                }
            }
    }

    /// Registers a new client connection; false if it must be closed at once (outage or
    /// stopped: it raced with the listener being closed).
    func connectionOpened(_ channel: any Channel) -> Bool {
        state.withLock { s in
            guard !s.stopped, !s.refusing else { return false }
            s.connections[ObjectIdentifier(channel)] = Connection(channel: channel, busy: false)
            return true
        }
    }

    func connectionClosed(_ channel: any Channel) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Marks a client connection busy (request being handled) or idle. Returns true when it
    /// became idle but must now be closed (outage started meanwhile, or stopped).
    func setBusy(_ channel: any Channel, _ busy: Bool) -> Bool {
        state.withLock { s in
            let key = ObjectIdentifier(channel)
            if s.stopped || (!busy && s.refusing) {
                s.connections[key] = nil
                return !busy
            }
            s.connections[key]?.busy = busy
            return false
        }
    }

    func upstreamOpened(_ channel: any Channel) -> Bool {
        state.withLock { s in
            guard !s.stopped else { return false }
            s.upstreamChannels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func upstreamClosed(_ channel: any Channel) {
        _ = state.withLock { $0.upstreamChannels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    struct Decision {
        let recordID: Int
        let mode: FaultMode
    }

    /// Picks the fault for a request (first matching injection, else the standing mode),
    /// consumes the injection and logs the request.
    func decide(_ request: ProxyRequest) -> Decision {
        // Evaluate predicates outside the lock (they are user code); then consume the first
        // matching injection that is still available.
        let (snapshot, personality) = state.withLock { ($0.injections, $0.personality) }
        let matching = Set(snapshot.filter { $0.predicate?(request) ?? true }.map(\.id))
        let personal = personality?(request)
        let now = ContinuousClock.now
        return state.withLock { s in
            var mode = s.standing == .passThrough ? personal ?? .passThrough : s.standing
            var injected = false
            if let index = s.injections.firstIndex(where: { matching.contains($0.id) && $0.remaining > 0 }) {
                mode = s.injections[index].mode
                injected = true
                s.injections[index].remaining -= 1
                if s.injections[index].remaining == 0 { s.injections.remove(at: index) }
            }
            let id = s.nextRecordID
            s.nextRecordID += 1
            s.logIndex[id] = s.log.count
            s.log.append(
                ProxyRecord(
                    id: id, method: request.method, uri: request.uri, fault: mode,
                    injected: injected, received: now, status: nil, upstreamStatus: nil,
                    outcome: .inFlight, bodyBytesSent: 0, finished: nil, error: nil
                )
            )
            return Decision(recordID: id, mode: mode)
        }
    }

    func updateRecord(_ id: Int, _ update: (inout ProxyRecord) -> Void) {
        state.withLock { s in
            guard let index = s.logIndex[id] else { return }
            update(&s.log[index])
        }
    }
}
