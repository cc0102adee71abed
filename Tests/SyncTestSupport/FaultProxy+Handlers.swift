// Channel handlers of FaultProxy (see FaultProxy.swift).

import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Client side

/// Handles one client connection: assembles each request, applies the fault chosen by the
/// proxy, forwards it over this connection's upstream connection and relays the response.
/// Everything runs on the client channel's event loop.
final class ProxyServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let proxy: FaultProxy
    private var requestHead: HTTPRequestHead?
    private var requestBody: ByteBuffer?
    /// The upstream connection paired with this client connection (lazily opened).
    private var upstream: UpstreamHandler?
    private var isActive = false
    /// The request being handled, if any, and whether its outcome is still open.
    private var current: (id: Int, mode: FaultMode)?

    init(proxy: FaultProxy) {
        self.proxy = proxy
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        if !proxy.connectionOpened(context.channel) {
            // Accepted while the listener was being closed (outage or stop): drop it.
            resetConnection(context)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        proxy.connectionClosed(context.channel)
        if let current {
            let now = ContinuousClock.now
            proxy.updateRecord(current.id) { record in
                if record.outcome == .inFlight { record.outcome = .clientClosed }
                if record.finished == nil { record.finished = now }
            }
            self.current = nil
        }
        upstream?.close()
        upstream = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHead = head
            requestBody = nil
            _ = proxy.setBusy(context.channel, true)
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                // We read the whole body before doing anything, so let the client send it now.
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                    promise: nil
                )
            }
        case .body(var part):
            if requestBody == nil {
                requestBody = part
            } else {
                requestBody!.writeBuffer(&part)
            }
        case .end:
            guard let head = requestHead else { return }
            let body = requestBody
            requestHead = nil
            requestBody = nil
            handleRequest(context: context, head: head, body: body)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Request handling

    private func handleRequest(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer?) {
        let request = ProxyRequest(
            method: head.method.rawValue,
            uri: head.uri,
            headers: head.headers.map { ($0.name, $0.value) }
        )
        let decision = proxy.decide(request)
        current = (decision.recordID, decision.mode)

        switch decision.mode {
        case .refuseConnections:
            finishRecord { $0.outcome = .dropped }
            resetConnection(context)
        case .hang:
            // Never answer. The record is finished when the connection closes.
            proxy.updateRecord(decision.recordID) { $0.outcome = .hung }
        case .status(let code, let retryAfter):
            sendLocalResponse(
                context: context,
                request: head,
                status: HTTPResponseStatus(statusCode: code),
                retryAfter: retryAfter,
                diagnostics: "FaultProxy: injected HTTP \(code)"
            )
        case .respond(let status, let contentType, let data):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(data.count))
            let keepAlive = head.isKeepAlive
            applyConnectionHeader(&headers, request: head, keepAlive: keepAlive)
            let response = HTTPResponseHead(
                version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            let body = context.channel.allocator.buffer(bytes: data)
            writeResponse(
                context: context, head: response, body: head.method == .HEAD ? nil : body, keepAlive: keepAlive
            ) {
                $0.status = status
                $0.bodyBytesSent = data.count
                $0.outcome = .responded
            }
        case .latency(let milliseconds):
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(milliseconds))) {
                guard self.isActive else { return }
                self.forward(context: context, head: head, body: body, mode: decision.mode)
            }
        case .passThrough, .resetMidBody, .truncatedBody:
            forward(context: context, head: head, body: body, mode: decision.mode)
        case .forward(let uri):
            var rewritten = head
            rewritten.uri = uri
            forward(context: context, head: rewritten, body: body, mode: .passThrough)
        }
    }

    private func finishRecord(_ update: (inout ProxyRecord) -> Void) {
        guard let current else { return }
        let now = ContinuousClock.now
        proxy.updateRecord(current.id) {
            update(&$0)
            $0.finished = now
        }
        self.current = nil
    }

    private func forward(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer?, mode: FaultMode) {
        let upstreamHead = makeUpstreamRequestHead(head, bodyLength: body?.readableBytes ?? 0)
        // A reused keep-alive connection may have been closed by the upstream just as we
        // sent on it; like common reverse proxies, retry such idempotent requests once on a
        // fresh connection.
        let idempotent: [HTTPMethod] = [.GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE]
        sendUpstream(
            context: context,
            head: upstreamHead,
            body: body,
            retryIfStale: idempotent.contains(head.method)
        ) { result in
            guard self.isActive else { return }
            switch result {
            case .success(let response):
                self.deliver(context: context, request: head, response: response, mode: mode)
            case .failure(let error):
                self.sendLocalResponse(
                    context: context,
                    request: head,
                    status: .badGateway,
                    retryAfter: nil,
                    diagnostics:
                        "FaultProxy: upstream \(self.proxy.upstreamHost):\(self.proxy.upstreamPort) failed: \(error)",
                    error: "\(error)"
                )
            }
        }
    }

    private func sendUpstream(
        context: ChannelHandlerContext,
        head: HTTPRequestHead,
        body: ByteBuffer?,
        retryIfStale: Bool,
        completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void
    ) {
        if let upstream, upstream.isUsable {
            upstream.send(head: head, body: body) { result in
                if case .failure(.closedBeforeResponse) = result, retryIfStale, self.isActive {
                    self.upstream = nil
                    self.connectUpstream(context: context) { connected in
                        switch connected {
                        case .success(let fresh): fresh.send(head: head, body: body, completion: completion)
                        case .failure(let error): completion(.failure(error))
                        }
                    }
                } else {
                    completion(result)
                }
            }
        } else {
            upstream?.close()
            upstream = nil
            connectUpstream(context: context) { connected in
                switch connected {
                case .success(let fresh): fresh.send(head: head, body: body, completion: completion)
                case .failure(let error): completion(.failure(error))
                }
            }
        }
    }

    private func connectUpstream(
        context: ChannelHandlerContext,
        completion: @escaping (Result<UpstreamHandler, UpstreamError>) -> Void
    ) {
        let proxy = self.proxy
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(proxy: proxy))
                }
            }
            .connect(host: proxy.upstreamHost, port: proxy.upstreamPort)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard
                        self.isActive,
                        let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    else {
                        channel.close(promise: nil)
                        completion(.failure(.connectFailed("client connection closed")))
                        return
                    }
                    self.upstream = handler
                    completion(.success(handler))
                case .failure(let error):
                    completion(.failure(.connectFailed("\(error)")))
                }
            }
    }

    private func makeUpstreamRequestHead(_ head: HTTPRequestHead, bodyLength: Int) -> HTTPRequestHead {
        var headers = head.headers
        stripHopByHopHeaders(&headers)
        headers.remove(name: "expect")
        headers.remove(name: "content-length")
        headers.replaceOrAdd(name: "host", value: "\(proxy.upstreamHost):\(proxy.upstreamPort)")
        if proxy.rewriteUpstreamURLs {
            // Bodies must come back uncompressed so URLs in them can be rewritten.
            headers.remove(name: "accept-encoding")
        }
        let methodsWithBody: [HTTPMethod] = [.POST, .PUT, .PATCH]
        if bodyLength > 0 || methodsWithBody.contains(head.method) {
            headers.add(name: "content-length", value: String(bodyLength))
        }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
    }

    // MARK: Responses

    private func deliver(
        context: ChannelHandlerContext,
        request: HTTPRequestHead,
        response: UpstreamResponse,
        mode: FaultMode
    ) {
        var headers = response.head.headers
        let upstreamContentLength = headers.first(name: "content-length")
        stripHopByHopHeaders(&headers)
        headers.remove(name: "content-length")
        var body = response.body ?? context.channel.allocator.buffer(capacity: 0)

        if proxy.rewriteUpstreamURLs {
            let rewriter = URLRewriter(proxy: proxy, clientHost: request.headers.first(name: "host"))
            for name in ["location", "content-location"] {
                if let value = headers.first(name: name), let rewritten = rewriter.rewrite(value) {
                    headers.replaceOrAdd(name: name, value: rewritten)
                }
            }
            if URLRewriter.isRewritableBody(headers), let rewritten = rewriter.rewrite(body) {
                body = rewritten
            }
        }

        let code = response.head.status.code
        let hasBody = request.method != .HEAD && !(100..<200).contains(code) && code != 204 && code != 304
        if hasBody {
            headers.add(name: "content-length", value: String(body.readableBytes))
        } else if let upstreamContentLength, code != 204 {
            // HEAD / 304: advertise what the GET would return. (With rewriting on this can be
            // off by the rewrite delta; acceptable for tests.)
            headers.add(name: "content-length", value: upstreamContentLength)
        }
        let keepAlive = request.isKeepAlive
        applyConnectionHeader(&headers, request: request, keepAlive: keepAlive)

        let head = HTTPResponseHead(version: request.version, status: response.head.status, headers: headers)
        let upstreamStatus = Int(code)
        proxy.updateRecord(current?.id ?? -1) {
            $0.upstreamStatus = upstreamStatus
            $0.status = upstreamStatus
        }

        switch mode {
        case .resetMidBody(let limit), .truncatedBody(let limit):
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            var sent = 0
            if hasBody, limit > 0, let slice = body.readSlice(length: min(limit, body.readableBytes)) {
                sent = slice.readableBytes
                context.write(wrapOutboundOut(.body(.byteBuffer(slice))), promise: nil)
            }
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.flush()
            // An empty write whose completion tells us that everything before it was handed
            // to the kernel.
            context.writeAndFlush(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(capacity: 0)))),
                promise: promise
            )
            let isReset: Bool = if case .resetMidBody = mode { true } else { false }
            promise.futureResult.assumeIsolated().whenComplete { _ in
                self.finishRecord {
                    $0.status = upstreamStatus
                    $0.bodyBytesSent = sent
                    $0.outcome = isReset ? .reset : .truncated
                }
                if isReset {
                    self.resetConnection(context, waitForDelivery: true)
                } else {
                    context.close(promise: nil)
                }
            }
        default:
            let bodyBytes = hasBody ? body.readableBytes : 0
            writeResponse(context: context, head: head, body: hasBody ? body : nil, keepAlive: keepAlive) {
                $0.status = upstreamStatus
                $0.bodyBytesSent = bodyBytes
                $0.outcome = .responded
            }
        }
    }

    private func sendLocalResponse(
        context: ChannelHandlerContext,
        request: HTTPRequestHead,
        status: HTTPResponseStatus,
        retryAfter: Int?,
        diagnostics: String,
        error: String? = nil
    ) {
        let issueCode =
            switch status.code {
            case 429: "throttled"
            case 502, 503, 504: "transient"
            case 401: "login"
            case 403: "forbidden"
            case 404: "not-found"
            default: "exception"
            }
        let json =
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":""#
            + issueCode + #"","diagnostics":""# + jsonEscape(diagnostics) + #""}]}"#
        let body = context.channel.allocator.buffer(string: json)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/fhir+json;charset=utf-8")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let retryAfter {
            headers.add(name: "retry-after", value: String(retryAfter))
        }
        let keepAlive = request.isKeepAlive
        applyConnectionHeader(&headers, request: request, keepAlive: keepAlive)
        let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
        let hasBody = request.method != .HEAD
        let code = Int(status.code)
        let bodyBytes = hasBody ? body.readableBytes : 0
        proxy.updateRecord(current?.id ?? -1) { $0.status = code }
        writeResponse(context: context, head: head, body: hasBody ? body : nil, keepAlive: keepAlive) {
            $0.status = code
            $0.bodyBytesSent = bodyBytes
            $0.outcome = .responded
            $0.error = error
        }
    }

    private func applyConnectionHeader(_ headers: inout HTTPHeaders, request: HTTPRequestHead, keepAlive: Bool) {
        if !keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if request.version == .http1_0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
    }

    /// Writes a complete response; then finishes the record and either returns the
    /// connection to idle or closes it.
    private func writeResponse(
        context: ChannelHandlerContext,
        head: HTTPResponseHead,
        body: ByteBuffer?,
        keepAlive: Bool,
        record: @escaping (inout ProxyRecord) -> Void
    ) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                self.finishRecord(record)
                let mustClose = self.proxy.setBusy(context.channel, false)
                if mustClose || !keepAlive {
                    context.close(promise: nil)
                }
            case .failure:
                self.finishRecord { $0.outcome = .clientClosed }
                context.close(promise: nil)
            }
        }
    }

    /// Aborts the connection with a TCP RST (SO_LINGER 0 then close). With
    /// `waitForDelivery`, first waits (bounded) until the kernel has delivered everything
    /// already written, so the client really receives the bytes written before the reset.
    private func resetConnection(_ context: ChannelHandlerContext, waitForDelivery: Bool = false) {
        let channel = context.channel
        let abort: @Sendable () -> Void = {
            guard let provider = channel as? any SocketOptionProvider else {
                channel.close(promise: nil)
                return
            }
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
        if waitForDelivery {
            waitUntilSendQueueDrained(
                channel: channel,
                deadline: .now() + .seconds(5),
                then: abort
            )
        } else {
            abort()
        }
    }
}

/// Polls TCP_INFO until the socket has no unsent and no unacknowledged data (i.e. the
/// peer's kernel has it), or the deadline passes (e.g. the peer stopped reading).
/// Linux only; elsewhere it calls `then` at once.
private func waitUntilSendQueueDrained(
    channel: any Channel,
    deadline: NIODeadline,
    then: @escaping @Sendable () -> Void
) {
    #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider, channel.isActive else {
            then()
            return
        }
        // The kernel's struct tcp_info is larger than glibc's; read it into a large enough
        // zeroed buffer. Offsets (Linux uapi/linux/tcp.h): tcpi_unacked at byte 24,
        // tcpi_notsent_bytes at byte 144 (kernel >= 4.6).
        let info: EventLoopFuture<SIMD64<UInt32>> = provider.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
        info.whenComplete { result in
            guard case .success(let words) = result else {
                then()
                return
            }
            let unacked = words[24 / 4]
            let notSent = words[144 / 4]
            if (unacked == 0 && notSent == 0) || NIODeadline.now() >= deadline {
                then()
            } else {
                channel.eventLoop.scheduleTask(in: .milliseconds(1)) {
                    waitUntilSendQueueDrained(channel: channel, deadline: deadline, then: then)
                }
            }
        }
    #else
        then()
    #endif
}

// MARK: - Upstream side

struct UpstreamResponse {
    let head: HTTPResponseHead
    let body: ByteBuffer?
}

enum UpstreamError: Error, CustomStringConvertible {
    case connectFailed(String)
    /// The connection closed (or failed) before any part of the response arrived.
    case closedBeforeResponse
    case closedMidResponse
    case failed(String)

    var description: String {
        switch self {
        case .connectFailed(let reason): "connect failed: \(reason)"
        case .closedBeforeResponse: "connection closed before the response"
        case .closedMidResponse: "connection closed in the middle of the response"
        case .failed(let reason): reason
        }
    }
}

/// The upstream connection's handler: sends one request at a time and collects the whole
/// response. Used only from its channel's event loop (the client connection's loop).
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let proxy: FaultProxy
    private var context: ChannelHandlerContext?
    private var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    private var responseHead: HTTPResponseHead?
    private var responseBody: ByteBuffer?
    private(set) var isUsable = true

    init(proxy: FaultProxy) {
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if !proxy.upstreamOpened(context.channel) {
            isUsable = false
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Also reached when the connect failed (no channelInactive then).
        proxy.upstreamClosed(context.channel)
        isUsable = false
        self.context = nil
    }

    func send(
        head: HTTPRequestHead,
        body: ByteBuffer?,
        completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void
    ) {
        guard let context, isUsable, self.completion == nil else {
            completion(.failure(.closedBeforeResponse))
            return
        }
        self.completion = completion
        responseHead = nil
        responseBody = nil
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func close() {
        isUsable = false
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let code = head.status.code
            if (100..<200).contains(code) && code != 101 {
                return  // informational (e.g. a stray 100 Continue): wait for the final head
            }
            responseHead = head
        case .body(var part):
            if responseBody == nil {
                responseBody = part
            } else {
                responseBody!.writeBuffer(&part)
            }
        case .end:
            guard let head = responseHead else { return }
            let body = responseBody
            responseHead = nil
            responseBody = nil
            if !head.isKeepAlive {
                isUsable = false
            }
            complete(.success(UpstreamResponse(head: head, body: body)))
            if !isUsable {
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isUsable = false
        proxy.upstreamClosed(context.channel)
        complete(.failure(responseHead == nil ? .closedBeforeResponse : .closedMidResponse))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        isUsable = false
        complete(.failure(responseHead == nil ? .closedBeforeResponse : .failed("\(error)")))
        context.close(promise: nil)
    }

    private func complete(_ result: Result<UpstreamResponse, UpstreamError>) {
        guard let completion else { return }
        self.completion = nil
        completion(result)
    }
}

// MARK: - Helpers

private func stripHopByHopHeaders(_ headers: inout HTTPHeaders) {
    let listed = headers[canonicalForm: "connection"].map { $0.lowercased() }
    for name in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"] {
        headers.remove(name: name)
    }
    for name in listed where name != "close" && name != "keep-alive" {
        headers.remove(name: String(name))
    }
}

private func jsonEscape(_ string: String) -> String {
    var out = ""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += unicodeEscape(scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}

private func unicodeEscape(_ value: UInt32) -> String {
    let hex = String(value, radix: 16)
    return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}

/// Rewrites absolute upstream URLs to the proxy's address.
struct URLRewriter {
    private let patterns: [[UInt8]]
    private let replacement: [UInt8]

    init(proxy: FaultProxy, clientHost: String?) {
        let upstreamPort = proxy.upstreamPort
        var hosts = [proxy.upstreamHost]
        if ["127.0.0.1", "localhost"].contains(proxy.upstreamHost) {
            hosts = ["127.0.0.1", "localhost"]
        }
        patterns = hosts.map { Array("http://\($0):\(upstreamPort)".utf8) }
        // Point at the proxy as the client addressed it (Host header), if that looks sane.
        let host: String
        if let clientHost, !clientHost.isEmpty,
            !clientHost.contains(where: { $0 == "/" || $0 == " " || $0 == "\"" || $0 == "\\" })
        {
            host = clientHost
        } else {
            host = "127.0.0.1:\(proxy.port)"
        }
        replacement = Array("http://\(host)".utf8)
    }

    /// Bodies we rewrite: not content-encoded, and textual (or untyped).
    static func isRewritableBody(_ headers: HTTPHeaders) -> Bool {
        if let encoding = headers.first(name: "content-encoding"), encoding.lowercased() != "identity" {
            return false
        }
        guard let type = headers.first(name: "content-type")?.lowercased() else { return true }
        return ["json", "xml", "text", "javascript", "html"].contains { type.contains($0) }
    }

    func rewrite(_ string: String) -> String? {
        var buffer = ByteBuffer(string: string)
        guard let rewritten = rewrite(buffer) else { return nil }
        buffer = rewritten
        return buffer.readString(length: buffer.readableBytes)
    }

    /// Returns the rewritten buffer, or nil if nothing matched.
    func rewrite(_ input: ByteBuffer) -> ByteBuffer? {
        var current = input
        var changed = false
        for pattern in patterns {
            if let next = replaceAll(in: current, pattern: pattern) {
                current = next
                changed = true
            }
        }
        return changed ? current : nil
    }

    private func replaceAll(in input: ByteBuffer, pattern: [UInt8]) -> ByteBuffer? {
        input.withUnsafeReadableBytes { haystack -> ByteBuffer? in
            guard let base = haystack.baseAddress, haystack.count >= pattern.count else { return nil }
            var output: ByteBuffer?
            var copiedUpTo = 0
            var searchFrom = 0
            while searchFrom + pattern.count <= haystack.count {
                guard let start = find(pattern, in: base, count: haystack.count, from: searchFrom) else { break }
                let end = start + pattern.count
                // Do not match a prefix of a longer port number (":8080" in ":80801").
                if end < haystack.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(haystack[end]) {
                    searchFrom = end
                    continue
                }
                if output == nil {
                    output = ByteBuffer()
                    output!.reserveCapacity(haystack.count + 1024)
                }
                output!.writeBytes(UnsafeRawBufferPointer(rebasing: haystack[copiedUpTo..<start]))
                output!.writeBytes(replacement)
                copiedUpTo = end
                searchFrom = end
            }
            guard var result = output else { return nil }
            result.writeBytes(UnsafeRawBufferPointer(rebasing: haystack[copiedUpTo...]))
            return result
        }
    }

    /// Index of the first occurrence of `pattern` in `base[from..<count]` (memchr for the
    /// first byte, memcmp for the rest: fast even in debug builds).
    private func find(_ pattern: [UInt8], in base: UnsafeRawPointer, count: Int, from: Int) -> Int? {
        pattern.withUnsafeBytes { needle -> Int? in
            var position = from
            while position + needle.count <= count {
                guard let hit = memchr(base + position, Int32(needle[0]), count - position - needle.count + 1) else {
                    return nil
                }
                let index = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + index, needle.baseAddress!, needle.count) == 0 {
                    return index
                }
                position = index + 1
            }
            return nil
        }
    }
}
