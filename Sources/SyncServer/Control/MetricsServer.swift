import NIOCore
import NIOHTTP1
import NIOPosix
public import Prometheus
import SyncEngine
import SyncModel
import SyncStore

/// Why the metrics endpoint could not start; the message names what to change.
public struct MetricsServerError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A minimal HTTP/1.1 server for Prometheus: `GET /metrics` answers the registry's text
/// exposition, any other path 404, any other method on `/metrics` 405.
///
/// It listens on loopback only (127.0.0.0/8, ::1 or `localhost`): the series reveal the size
/// and health of a practice, so reaching them from elsewhere goes through something the
/// operator chose (an SSH tunnel, a local agent), never through this port.
public final class MetricsServer: Sendable {
    /// `text/plain; version=0.0.4`: the Prometheus text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    let channel: any Channel
    /// The port actually bound (useful with port 0).
    public let port: Int
    /// The address bound, as an IP literal.
    public let host: String

    /// Starts serving `registry`; `refresh` runs before each scrape (off the event loop) to set
    /// gauges from the daemon's current status.
    public static func start(
        host: String, port: Int, registry: PrometheusCollectorRegistry, refresh: @escaping @Sendable () -> Void
    ) async throws -> MetricsServer {
        let address = try loopbackAddress(host: host, port: port)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 32)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(MetricsHTTPHandler(registry: registry, refresh: refresh))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(to: address).get()
        } catch {
            throw MetricsServerError("cannot listen for metrics on \(display(address)): \(error)")
        }
        return MetricsServer(
            channel: channel, host: address.ipAddress ?? host, port: channel.localAddress?.port ?? port)
    }

    /// Splits a `[metrics] listen` value: `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`;
    /// a host that is not a loopback address is refused here already, so that configuration
    /// loading can reject it.
    public static func parseListen(_ text: String) throws(MetricsServerError) -> (host: String, port: Int) {
        do {
            let address = try ListenAddress.parseLoopback(text)
            return (address.host, address.port)
        } catch {
            throw MetricsServerError(error.description)
        }
    }

    /// The socket address for `host`, refused unless it is a loopback address.
    static func loopbackAddress(host: String, port: Int) throws(MetricsServerError) -> SocketAddress {
        guard (0...65_535).contains(port) else {
            throw MetricsServerError("metrics port \(port) is out of range (0 to 65535)")
        }
        var literal = Substring(host)
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = literal.dropFirst().dropLast() }
        let listen: ListenAddress
        do {
            listen = try ListenAddress(host: String(literal), port: port).requireLoopback()
        } catch {
            throw MetricsServerError(error.description)
        }
        guard let address = try? SocketAddress(ipAddress: listen.ipLiteral, port: listen.port) else {
            throw MetricsServerError("metrics host \"\(listen.host.prefix(64))\" is not an IP address")
        }
        return address
    }

    static func display(_ address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "?"
        let port = address.port.map(String.init) ?? "?"
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    private init(channel: any Channel, host: String, port: Int) {
        self.channel = channel
        self.host = host
        self.port = port
    }

    /// Stops listening; connections still open are closed.
    public func stop() async {
        try? await channel.close()
    }
}

/// One connection's HTTP/1.1 exchanges. Pipelined requests are queued by NIO's pipelining
/// handler, so one request is in flight at a time.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let refresh: @Sendable () -> Void
    // Only touched on the channel's event loop.
    var request: HTTPRequestHead?
    var active = true

    init(registry: PrometheusCollectorRegistry, refresh: @escaping @Sendable () -> Void) {
        self.registry = registry
        self.refresh = refresh
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // no request here has a body worth reading
        case .end:
            guard let head = request else { return }
            request = nil
            handle(head, context: context)
        }
    }

    func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            respond(context: context, to: head, status: .notFound, body: "not found: metrics are at /metrics\n")
            return
        }
        guard head.method == .GET else {
            respond(
                context: context, to: head, status: .methodNotAllowed, body: "only GET is supported\n",
                extraHeaders: [("Allow", "GET")])
            return
        }
        let registry = self.registry
        let refresh = self.refresh
        // The refresh may read the replica: keep it off the event loop.
        NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) { () -> [UInt8] in
            refresh()
            return registry.emitToBuffer()
        }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let bytes):
                self.respond(
                    context: context, to: head, status: .ok, bytes: bytes, contentType: MetricsServer.contentType)
            case .failure:
                self.respond(
                    context: context, to: head, status: .internalServerError, body: "metrics unavailable\n")
            }
        }
    }

    func respond(
        context: ChannelHandlerContext, to head: HTTPRequestHead, status: HTTPResponseStatus, body: String,
        extraHeaders: [(String, String)] = []
    ) {
        respond(
            context: context, to: head, status: status, bytes: Array(body.utf8),
            contentType: "text/plain; charset=utf-8", extraHeaders: extraHeaders)
    }

    func respond(
        context: ChannelHandlerContext, to head: HTTPRequestHead, status: HTTPResponseStatus, bytes: [UInt8],
        contentType: String, extraHeaders: [(String, String)] = []
    ) {
        guard active else { return }
        let keepAlive = head.isKeepAlive
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(bytes.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
