import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Limits what one client can hold of the listener: at most `limit` open connections in all
/// (a flood is refused at once, the daemon keeps its memory and file descriptors), and a
/// connection that has not sent a complete request head within `headerTimeout` (a slow
/// sender holding a slot, "slowloris") is closed. Idle keep-alive connections are closed by
/// the server's idle timeout.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Open connections, shared by every connection's guard.
    final class Count: Sendable {
        let limit: Int
        let open = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        init(limit: Int) { self.limit = limit }
    }

    let count: Count
    let headerTimeout: TimeAmount
    let logger: Logger
    // Only touched on the channel's event loop.
    var counted = false
    var deadline: Scheduled<Void>?

    init(count: Count, headerTimeout: TimeAmount, logger: Logger) {
        self.count = count
        self.headerTimeout = headerTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let open = count.open.wrappingAdd(1, ordering: .relaxed).newValue
        counted = true
        if open > count.limit {
            if count.refused.wrappingAdd(1, ordering: .relaxed).newValue % 100 == 1 {
                logger.warning("connection refused: too many open", metadata: ["limit": "\(count.limit)"])
            }
            context.close(promise: nil)
            return
        }
        armDeadline(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // After each answer, the next request's head must come in time too.
        if case .end = unwrapOutboundIn(data) { armDeadline(context: context) }
        context.write(data, promise: promise)
    }

    private func armDeadline(context: ChannelHandlerContext) {
        deadline?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: headerTimeout) { bound.value.close(promise: nil) }
    }

    private func release() {
        deadline?.cancel()
        deadline = nil
        if counted {
            counted = false
            count.open.wrappingSubtract(1, ordering: .relaxed)
        }
    }
}
