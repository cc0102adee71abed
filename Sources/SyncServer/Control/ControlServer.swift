import Foundation
public import Logging
import NIOCore
import NIOPosix
import SyncEngine
public import SyncModel
import SyncStore

/// The daemon's side of the control socket: a Unix socket (mode 0660, group `[control]
/// staff_group` when the system has it) that answers one JSON request per connection.
/// Each request reaches the handler with its peer as the kernel names it (``PeerIdentity``);
/// malformed requests get an error response; the daemon carries on.
public final class ControlServer: Sendable {
    let channel: any Channel
    public let path: String

    public typealias Handler = @Sendable (ControlRequest, ControlPeer) async -> ControlResponse

    public static func start(path: String, group: String?, logger: Logger, handler: @escaping Handler) async throws
        -> ControlServer
    {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        // A stale socket from an earlier run would make bind fail.
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            attributes[.type] as? FileAttributeType == .typeSocket
        {
            try FileManager.default.removeItem(atPath: path)
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlConnection(handler: handler, logger: logger))
                }
            }
        let channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        chmod(path, 0o660)
        // Staff reach the socket through its group; a group the system lacks leaves it to root and the service.
        if let group, let gid = PeerIdentity.groupID(group), chown(path, getuid(), gid) != 0 {
            logger.warning("cannot give the control socket to its group", metadata: ["group": "\(group)"])
        }
        return ControlServer(channel: channel, path: path)
    }

    private init(channel: any Channel, path: String) {
        self.channel = channel
        self.path = path
    }

    public func stop() async {
        try? await channel.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

final class ControlConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let handler: ControlServer.Handler
    let logger: Logger
    // Only touched on the channel's event loop.
    var buffer = ByteBuffer()
    var answered = false

    init(handler: @escaping ControlServer.Handler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        let view = buffer.readableBytesView
        let newline = view.firstIndex(of: 0x0A)
        // The limit holds for the line, however the bytes arrived (one chunk or several).
        if (newline ?? view.endIndex) - view.startIndex > ControlRequest.maxBytes {
            respond(context: context, .failure("request too large (limit \(ControlRequest.maxBytes) bytes)"))
            return
        }
        guard let newline else { return }
        let line = Data(view[view.startIndex..<newline])
        answered = true
        let request: ControlRequest
        do {
            request = try JSONDecoder().decode(ControlRequest.self, from: line)
        } catch let refusal as ControlRequestError {
            logger.notice("control request refused")
            respond(context: context, .failure(refusal.description))
            return
        } catch {
            logger.notice("malformed control request")
            respond(
                context: context,
                .failure("malformed request: expected one JSON object like {\"command\":\"status\"} and a newline"))
            return
        }
        let handler = self.handler
        let loop = context.eventLoop
        let bound = NIOLoopBound((connection: self, context: context), eventLoop: loop)
        let response = PeerIdentity.credentials(of: context.channel).flatMap { credentials in
            let promise = loop.makePromise(of: ControlResponse.self)
            promise.completeWithTask { await handler(request, PeerIdentity.peer(credentials)) }
            return promise.futureResult
        }
        let logger = self.logger
        response.whenComplete { result in
            switch result {
            case .success(let response):
                bound.value.connection.respond(context: bound.value.context, response)
            case .failure:
                logger.warning("control request refused: the peer's credentials are unknown")
                bound.value.connection.respond(
                    context: bound.value.context, .failure("refused: the peer's credentials cannot be read"))
            }
        }
    }

    func respond(context: ChannelHandlerContext, _ response: ControlResponse) {
        answered = true
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = (try? encoder.encode(response)) ?? Data(#"{"ok":false,"error":"encoding failed"}"#.utf8)
        data.append(0x0A)
        var out = context.channel.allocator.buffer(capacity: data.count)
        out.writeBytes(data)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
