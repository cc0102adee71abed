// Integration tests of FaultProxy against a real HTTP server (python3) on loopback, with
// curl as the client (curl's exit codes tell exactly how a transfer failed) and a raw
// socket client where keep-alive behaviour matters. Needs `python3` and `curl` on PATH.

import Foundation
import SyncTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
    private let tcpSocketType = Int32(SOCK_STREAM.rawValue)
    private func closeSocket(_ fd: Int32) { _ = Glibc.close(fd) }
#elseif canImport(Darwin)
    import Darwin
    private let tcpSocketType = SOCK_STREAM
    private func closeSocket(_ fd: Int32) { _ = Darwin.close(fd) }
#endif

@Suite("FaultProxy", .serialized, .timeLimit(.minutes(2)))
struct FaultProxyTests {
    // MARK: Pass-through

    @Test func passThroughIsByteIdentical() async throws {
        try await withFixture { f in
            let out = f.dir.appendingPathComponent("out.bin")
            let r = try await curl(["-o", out.path, "-w", "%{http_code}", f.proxy.url("/big.bin")])
            #expect(r.exitCode == 0, "\(r.stderr)")
            #expect(r.stdout == "200")
            #expect(try Data(contentsOf: out) == f.bigFile)

            let log = await f.proxy.settledRequests()
            try #require(log.count == 1)
            #expect(log[0].method == "GET")
            #expect(log[0].uri == "/big.bin")
            #expect(log[0].fault == .passThrough)
            #expect(log[0].status == 200)
            #expect(log[0].upstreamStatus == 200)
            #expect(log[0].outcome == .responded)
            #expect(log[0].bodyBytesSent == f.bigFile.count)
            let finished = try #require(log[0].finished)
            #expect(finished >= log[0].received)
        }
    }

    @Test func keepAliveSequentialAndConcurrentRequests() async throws {
        try await withFixture { f in
            // 50 requests in one curl invocation reuse a single keep-alive connection.
            let urls = (0..<50).flatMap { ["-o", "/dev/null", f.proxy.url("/small.txt?n=\($0)")] }
            let r = try await curl(["-w", "%{http_code} %{num_connects}\\n"] + urls)
            #expect(r.exitCode == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.count == 50)
            #expect(lines.allSatisfy { $0.hasPrefix("200 ") })
            #expect(lines.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +) == 1)

            // 6 concurrent clients, 10 requests each.
            f.proxy.resetLog()
            let results = try await withThrowingTaskGroup(of: CurlResult.self) { group in
                for client in 0..<6 {
                    let urls = (0..<10).flatMap { ["-o", "/dev/null", f.proxy.url("/big.bin?c=\(client)&n=\($0)")] }
                    group.addTask {
                        try await curl(["-w", "%{http_code}:%{size_download}\\n"] + urls)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for r in results {
                #expect(r.exitCode == 0, "\(r.stderr)")
                #expect(r.stdout.split(separator: "\n").allSatisfy { $0 == "200:\(f.bigFile.count)" })
            }
            #expect((await f.proxy.settledRequests()).count == 60)
            #expect((await f.proxy.settledRequests()).allSatisfy { $0.status == 200 && $0.outcome == .responded })
        }
    }

    @Test func http10UpstreamWithoutKeepAlive() async throws {
        // Plain `python3 -m http.server`: HTTP/1.0, closes after every response.
        try await withFixture(plainHTTPServer: true) { f in
            let outs = (0..<10).map { f.dir.appendingPathComponent("out\($0).bin") }
            var args: [String] = ["-w", "%{http_code}\\n"]
            for out in outs { args += ["-o", out.path, f.proxy.url("/big.bin")] }
            let r = try await curl(args)
            #expect(r.exitCode == 0, "\(r.stderr)")
            #expect(r.stdout.split(separator: "\n").allSatisfy { $0 == "200" })
            for out in outs {
                #expect(try Data(contentsOf: out) == f.bigFile)
            }
            #expect((await f.proxy.settledRequests()).count == 10)
        }
    }

    @Test func postBodyIsForwarded() async throws {
        try await withFixture { f in
            // 3 MB: curl sends `Expect: 100-continue`, which the proxy answers.
            let payload = randomData(count: 3_000_000)
            let input = f.dir.appendingPathComponent("payload.bin")
            try payload.write(to: input)
            let out = f.dir.appendingPathComponent("echo.bin")
            let r = try await curl([
                "-o", out.path, "-w", "%{http_code}", "--data-binary", "@\(input.path)",
                "-H", "Content-Type: application/octet-stream", f.proxy.url("/echo"),
            ])
            #expect(r.exitCode == 0, "\(r.stderr)")
            #expect(r.stdout == "200")
            #expect(try Data(contentsOf: out) == payload)
            #expect((await f.proxy.settledRequests()).first?.method == "POST")
        }
    }

    // MARK: Injected statuses

    @Test func status503WithRetryAfterAnd429() async throws {
        try await withFixture { f in
            f.proxy.setMode(.status(503, retryAfter: 5))
            let headersFile = f.dir.appendingPathComponent("headers.txt")
            let body = f.dir.appendingPathComponent("body.json")
            var r = try await curl([
                "-D", headersFile.path, "-o", body.path, "-w", "%{http_code}", f.proxy.url("/big.bin"),
            ])
            #expect(r.exitCode == 0)
            #expect(r.stdout == "503")
            let headers = try String(contentsOf: headersFile, encoding: .utf8).lowercased()
            #expect(headers.contains("retry-after: 5\r\n"))
            #expect(headers.contains("content-type: application/fhir+json"))
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: body)) as? [String: Any]
            )
            #expect(json["resourceType"] as? String == "OperationOutcome")

            f.proxy.setMode(.status(429))
            r = try await curl(["-D", headersFile.path, "-o", body.path, "-w", "%{http_code}", f.proxy.url("/x")])
            #expect(r.stdout == "429")
            #expect(try !String(contentsOf: headersFile, encoding: .utf8).lowercased().contains("retry-after"))

            let log = await f.proxy.settledRequests()
            #expect(log.map(\.status) == [503, 429])
            #expect(log.map(\.fault) == [.status(503, retryAfter: 5), .status(429)])
            // The upstream was not contacted.
            #expect(log.allSatisfy { $0.upstreamStatus == nil })
        }
    }

    @Test func upstreamUnreachableGives502() async throws {
        let deadPort = try unusedPort()
        let proxy = try await FaultProxy.start(upstreamPort: deadPort)
        do {
            let r = try await curl(["-o", "/dev/null", "-w", "%{http_code}", proxy.url("/Patient")])
            #expect(r.exitCode == 0)
            #expect(r.stdout == "502")
            let record = try #require(await proxy.settledRequests().first)
            #expect(record.status == 502)
            #expect(record.error != nil)
        } catch {
            try await proxy.stop()
            throw error
        }
        try await proxy.stop()
    }

    // MARK: Latency

    @Test func latencyDelaysTheResponse() async throws {
        try await withFixture { f in
            f.proxy.setMode(.latency(milliseconds: 400))
            let start = ContinuousClock.now
            let r = try await curl(["-o", "/dev/null", "-w", "%{http_code}", f.proxy.url("/small.txt")])
            let elapsed = ContinuousClock.now - start
            #expect(r.stdout == "200")
            #expect(elapsed >= .milliseconds(400))
            let record = try #require((await f.proxy.settledRequests()).first)
            #expect(try #require(record.duration) >= .milliseconds(400))
            #expect(record.fault == .latency(milliseconds: 400))
        }
    }

    // MARK: Broken bodies

    @Test(arguments: [100_000, 900_000])
    func resetMidBody(afterBytes: Int) async throws {
        try await withFixture { f in
            f.proxy.setMode(.resetMidBody(afterBytes: afterBytes))
            let out = f.dir.appendingPathComponent("partial.bin")
            let r = try await curl(["-o", out.path, f.proxy.url("/big.bin")])
            #expect(r.exitCode == 56, "\(r.stderr)")  // CURLE_RECV_ERROR
            #expect(r.stderr.lowercased().contains("reset by peer"), "\(r.stderr)")
            let received = try Data(contentsOf: out)
            #expect(received.count == afterBytes)
            #expect(received == f.bigFile.prefix(afterBytes))
            let record = try #require((await f.proxy.settledRequests()).first)
            #expect(record.outcome == .reset)
            #expect(record.status == 200)
            #expect(record.bodyBytesSent == afterBytes)
        }
    }

    @Test func truncatedBody() async throws {
        try await withFixture { f in
            f.proxy.setMode(.truncatedBody(afterBytes: 50_000))
            let out = f.dir.appendingPathComponent("partial.bin")
            let r = try await curl(["-o", out.path, f.proxy.url("/big.bin")])
            #expect(r.exitCode == 18, "\(r.stderr)")  // CURLE_PARTIAL_FILE
            let received = try Data(contentsOf: out)
            #expect(received == f.bigFile.prefix(50_000))
            #expect((await f.proxy.settledRequests()).first?.outcome == .truncated)
        }
    }

    // MARK: Outage

    @Test func refuseConnectionsThenRecoverOnSamePort() async throws {
        try await withFixture { f in
            let port = f.proxy.port
            f.proxy.setMode(.refuseConnections)
            var r = try await curl(["-o", "/dev/null", f.proxy.url("/small.txt")])
            #expect(r.exitCode == 7, "\(r.stderr)")  // CURLE_COULDNT_CONNECT
            #expect(r.stderr.lowercased().contains("refused") || r.stderr.contains("Couldn't connect"))
            #expect(f.proxy.requests.isEmpty)

            f.proxy.setMode(.passThrough)
            #expect(f.proxy.port == port)
            #expect(f.proxy.listenerError == nil)
            r = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/small.txt"])
            #expect(r.exitCode == 0, "\(r.stderr)")
            #expect(r.stdout == "200")

            // Twice more, to be sure the rebind is repeatable.
            for _ in 0..<2 {
                f.proxy.setMode(.refuseConnections)
                #expect(try await curl(["-o", "/dev/null", f.proxy.url("/small.txt")]).exitCode == 7)
                f.proxy.setMode(.passThrough)
                #expect(try await curl(["-o", "/dev/null", f.proxy.url("/small.txt")]).exitCode == 0)
            }
        }
    }

    @Test func refuseConnectionsClosesIdleKeepAliveConnections() async throws {
        try await withFixture { f in
            let client = try RawClient(port: f.proxy.port)
            defer { client.close() }
            let first = try client.get("/small.txt")
            #expect(first.status == 200)
            #expect(first.body == f.smallFile)
            // Still usable while healthy.
            #expect(try client.get("/small.txt").status == 200)

            f.proxy.setMode(.refuseConnections)
            // The idle keep-alive connection is closed by the proxy (EOF or reset).
            #expect(try client.waitForClose(deadline: .now + .seconds(5)))
            f.proxy.setMode(.passThrough)
        }
    }

    @Test func refuseConnectionsLetsAnInFlightResponseFinishThenCloses() async throws {
        try await withFixture { f in
            let client = try RawClient(port: f.proxy.port)
            defer { client.close() }
            f.proxy.setMode(.latency(milliseconds: 300))
            let response = Task.detached { try client.get("/small.txt") }
            try await pollUntil("request reached the proxy") { !f.proxy.requests.isEmpty }
            f.proxy.setMode(.refuseConnections)
            // The busy connection is not cut: its response is delivered, then it is closed.
            let (status, body) = try await response.value
            #expect(status == 200)
            #expect(body == f.smallFile)
            #expect(try client.waitForClose(deadline: .now + .seconds(5)))
            #expect(try await curl(["-o", "/dev/null", f.proxy.url("/small.txt")]).exitCode == 7)
            f.proxy.setMode(.passThrough)
        }
    }

    @Test func hangNeverAnswersAndStopClosesIt() async throws {
        try await withFixture { f in
            f.proxy.setMode(.hang)
            let r = try await curl(["-o", "/dev/null", "--max-time", "1", f.proxy.url("/small.txt")])
            #expect(r.exitCode == 28, "\(r.stderr)")  // CURLE_OPERATION_TIMEDOUT
            #expect((await f.proxy.settledRequests()).first?.outcome == .hung)

            // A hung request is released (connection closed) by stop().
            f.proxy.resetLog()
            let started = ContinuousClock.now
            async let pending = curl(["-o", "/dev/null", "--max-time", "60", f.proxy.url("/small.txt")])
            try await pollUntil("hung request reached the proxy") { !f.proxy.requests.isEmpty }
            try await f.proxy.stop()
            let result = try await pending
            #expect(result.exitCode == 52, "\(result.stderr)")  // CURLE_GOT_NOTHING
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    // MARK: One-shot injections and the log

    @Test func injectAppliesExactlyNTimesThenFallsBack() async throws {
        try await withFixture { f in
            f.proxy.inject(.status(503, retryAfter: 1), times: 2)
            var codes: [String] = []
            for _ in 0..<4 {
                codes.append(
                    try await curl(["-o", "/dev/null", "-w", "%{http_code}", f.proxy.url("/small.txt")]).stdout)
            }
            #expect(codes == ["503", "503", "200", "200"])
            #expect((await f.proxy.settledRequests()).map(\.injected) == [true, true, false, false])
            #expect(f.proxy.pendingInjections == 0)

            // With a predicate: only matching requests consume it; injections go ahead of the
            // standing mode.
            f.proxy.setMode(.latency(milliseconds: 1))
            f.proxy.inject(.status(429), times: 1) { $0.uri.hasPrefix("/small") }
            f.proxy.resetLog()
            codes = []
            for path in ["/big.bin", "/small.txt", "/small.txt"] {
                codes.append(try await curl(["-o", "/dev/null", "-w", "%{http_code}", f.proxy.url(path)]).stdout)
            }
            #expect(codes == ["200", "429", "200"])
            let log = await f.proxy.settledRequests()
            #expect(log.map(\.uri) == ["/big.bin", "/small.txt", "/small.txt"])
            #expect(log.map(\.fault) == [.latency(milliseconds: 1), .status(429), .latency(milliseconds: 1)])
            #expect(log.allSatisfy { $0.finished != nil })

            // A one-shot reset, then normal service on the next attempt (a client retry).
            f.proxy.setMode(.passThrough)
            f.proxy.inject(.resetMidBody(afterBytes: 10), times: 1)
            #expect(try await curl(["-o", "/dev/null", f.proxy.url("/big.bin")]).exitCode == 56)
            #expect(try await curl(["-o", "/dev/null", f.proxy.url("/big.bin")]).exitCode == 0)

            // An injected refuseConnections drops the connection without a response.
            f.proxy.inject(.refuseConnections, times: 1)
            #expect(try await curl(["-o", "/dev/null", f.proxy.url("/big.bin")]).exitCode == 56)
            #expect(try await curl(["-o", "/dev/null", f.proxy.url("/big.bin")]).exitCode == 0)
            #expect(await f.proxy.settledRequests().suffix(2).map(\.outcome) == [.dropped, .responded])

            f.proxy.resetLog()
            #expect(f.proxy.requests.isEmpty)
        }
    }

    // MARK: URL rewriting

    @Test func rewritesUpstreamURLsInBodiesAndHeaders() async throws {
        try await withFixture { f in
            let up = f.upstreamPort
            let bundle = """
                {"resourceType":"Bundle","link":[{"relation":"next","url":"http://127.0.0.1:\(up)/Patient?page=2"}],\
                "entry":[{"fullUrl":"http://localhost:\(up)/Patient/1"},{"fullUrl":"http://127.0.0.1:\(up)9/other"}]}
                """
            try Data(bundle.utf8).write(to: f.dir.appendingPathComponent("bundle.json"))
            let out = f.dir.appendingPathComponent("bundle.out")
            let headersFile = f.dir.appendingPathComponent("headers.txt")
            let r = try await curl(["-D", headersFile.path, "-o", out.path, f.proxy.url("/bundle.json")])
            #expect(r.exitCode == 0, "\(r.stderr)")
            let body = try String(contentsOf: out, encoding: .utf8)
            let proxyBase = "http://127.0.0.1:\(f.proxy.port)"
            #expect(body.contains("\"url\":\"\(proxyBase)/Patient?page=2\""))
            #expect(body.contains("\"fullUrl\":\"\(proxyBase)/Patient/1\""))
            #expect(body.contains("http://127.0.0.1:\(up)9/other"))  // a different port: untouched
            let headers = try String(contentsOf: headersFile, encoding: .utf8).lowercased()
            #expect(headers.contains("content-length: \(body.utf8.count)\r\n"))

            // Location header: a redirect stays on the proxy.
            f.proxy.resetLog()
            let follow = try await curl([
                "-L", "-o", "/dev/null", "-w", "%{http_code} %{url_effective}", f.proxy.url("/redirect"),
            ])
            #expect(follow.stdout == "200 \(proxyBase)/small.txt")
            #expect((await f.proxy.settledRequests()).map(\.uri) == ["/redirect", "/small.txt"])

            // Host is fixed and Accept-Encoding dropped on the way upstream.
            let echoed = try await curl(["-s", "-H", "Accept-Encoding: gzip", f.proxy.url("/echo-headers")])
            let seen = try #require(
                try JSONSerialization.jsonObject(with: Data(echoed.stdout.utf8)) as? [String: String]
            )
            #expect(seen["host"] == "127.0.0.1:\(up)")
            #expect(seen["accept-encoding"] == nil)
        }
    }

    @Test func rewritingCanBeDisabled() async throws {
        try await withFixture(rewriteUpstreamURLs: false) { f in
            let up = f.upstreamPort
            let bundle = #"{"link":[{"url":"http://127.0.0.1:\#(up)/Patient?page=2"}]}"#
            try Data(bundle.utf8).write(to: f.dir.appendingPathComponent("bundle.json"))
            let r = try await curl(["-s", f.proxy.url("/bundle.json")])
            #expect(r.stdout == bundle)
        }
    }
}

// MARK: - Fixture: python upstream + proxy

private struct Fixture {
    let dir: URL
    let upstreamPort: Int
    let proxy: FaultProxy
    let bigFile: Data
    let smallFile: Data
}

/// HTTP/1.1 keep-alive upstream: static files, plus POST /echo, GET /echo-headers and
/// GET /redirect. Prints "PORT <n>" once listening.
private let upstreamScript = #"""
    import http.server, json, sys, functools
    class H(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def reply(self, code, body, ctype="application/octet-stream", extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra: self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            self.reply(200, self.rfile.read(n))
        def do_GET(self):
            if self.path == "/echo-headers":
                seen = {k.lower(): v for k, v in self.headers.items()}
                self.reply(200, json.dumps(seen).encode(), "application/json")
            elif self.path == "/redirect":
                port = self.server.server_address[1]
                self.reply(302, b"", extra=[("Location", "http://127.0.0.1:%d/small.txt" % port)])
            else:
                super().do_GET()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
    print("PORT", srv.server_address[1], flush=True)
    srv.serve_forever()
    """#

private func withFixture(
    rewriteUpstreamURLs: Bool = true,
    plainHTTPServer: Bool = false,
    _ body: (Fixture) async throws -> Void
) async throws {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("faultproxy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let www = dir.appendingPathComponent("www")
    try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
    let bigFile = randomData(count: 1 << 20)
    let smallFile = Data("hello from upstream\n".utf8)
    try bigFile.write(to: www.appendingPathComponent("big.bin"))
    try smallFile.write(to: www.appendingPathComponent("small.txt"))

    let stdoutFile = dir.appendingPathComponent("upstream.out")
    _ = FileManager.default.createFile(atPath: stdoutFile.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments =
        plainHTTPServer
        ? ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", www.path]
        : ["python3", "-u", "-c", upstreamScript, www.path]
    process.standardOutput = try FileHandle(forWritingTo: stdoutFile)
    process.standardError = FileHandle.nullDevice
    try process.run()
    defer {
        // SIGKILL: the child inherits the test runner's signal mask, in which SIGTERM is
        // blocked, so terminate() would not stop it.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    // Readiness: the server prints its port once it is listening.
    var upstreamPort = 0
    try await pollUntil("upstream python server printed its port") {
        let text = (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? ""
        let pattern = plainHTTPServer ? #/port (\d+)/# : #/PORT (\d+)/#
        guard let match = text.firstMatch(of: pattern) else { return false }
        upstreamPort = Int(match.1) ?? 0
        return upstreamPort > 0
    }

    let proxy = try await FaultProxy.start(
        upstreamPort: upstreamPort,
        rewriteUpstreamURLs: rewriteUpstreamURLs
    )
    let fixture = Fixture(dir: www, upstreamPort: upstreamPort, proxy: proxy, bigFile: bigFile, smallFile: smallFile)
    do {
        try await body(fixture)
    } catch {
        try? await proxy.stop()
        throw error
    }
    try await proxy.stop()
}

private struct PollTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for: \(what)" }
}

/// Polls `condition` until it holds or the deadline passes.
private func pollUntil(
    _ what: String,
    timeout: Duration = .seconds(10),
    _ condition: () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw PollTimeout(what: what)
}

private func randomData(count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = generator.next() }
        for i in (words.count * 8)..<count { raw[i] = UInt8.random(in: 0...255, using: &generator) }
    }
    return data
}

// MARK: - curl

private struct CurlResult: Sendable {
    let exitCode: Int32
    let stdout: String
    let stderr: String
}

/// Runs curl (silent, errors shown) without blocking a concurrency thread; output goes to
/// temporary files so large outputs cannot fill a pipe.
private func curl(_ arguments: [String]) async throws -> CurlResult {
    let id = UUID().uuidString
    let tmp = FileManager.default.temporaryDirectory
    let outURL = tmp.appendingPathComponent("curl-\(id).out")
    let errURL = tmp.appendingPathComponent("curl-\(id).err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["curl", "-sS", "--noproxy", "*"] + arguments
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    return CurlResult(
        exitCode: status,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    )
}

// MARK: - Raw socket client (keep-alive behaviour)

private struct SocketError: Error, CustomStringConvertible {
    let description: String
    init(_ what: String) { description = "\(what): errno \(errno)" }
}

private func unusedPort() throws -> Int {
    let fd = socket(AF_INET, tcpSocketType, 0)
    guard fd >= 0 else { throw SocketError("socket") }
    defer { closeSocket(fd) }
    var addr = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard ok else { throw SocketError("bind") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

private func loopback(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return addr
}

/// A minimal blocking HTTP/1.1 client on one keep-alive connection.
/// @unchecked Sendable: it is handed to a detached task and used by one task at a time
/// (the test awaits that task before touching it again).
private final class RawClient: @unchecked Sendable {
    private let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, tcpSocketType, 0)
        guard fd >= 0 else { throw SocketError("socket") }
        var addr = loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            closeSocket(fd)
            throw SocketError("connect")
        }
    }

    func close() { closeSocket(fd) }

    func get(_ path: String) throws -> (status: Int, body: Data) {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw SocketError("send")
        }
        let separator = Array("\r\n\r\n".utf8)
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = pending.indices.dropLast(3).first { Array(pending[$0..<$0 + 4]) == separator }
            if headerEnd == nil { try receiveMore() }
        }
        let head = String(decoding: pending[..<headerEnd!], as: UTF8.self)
        pending.removeFirst(headerEnd! + 4)
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        let lengthLine = lines.first { $0.lowercased().hasPrefix("content-length:") }
        let length = Int(lengthLine?.split(separator: ":")[1].trimmingCharacters(in: .whitespaces) ?? "0") ?? 0
        while pending.count < length { try receiveMore() }
        let body = Data(pending[..<length])
        pending.removeFirst(length)
        return (status, body)
    }

    private func receiveMore() throws {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw SocketError("recv returned \(n)") }
        pending += buffer[..<n]
    }

    /// True once the peer has closed the connection (EOF or reset) before `deadline`.
    func waitForClose(deadline: ContinuousClock.Instant) throws -> Bool {
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = deadline - ContinuousClock.now
            let ms = Int32(
                max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&descriptor, 1, ms) > 0 else { continue }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { return true }
            // Unexpected data: keep waiting for the close.
        }
        return false
    }
}
