import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The daemon as a service: sd_notify, the control socket and the operator commands.
@Suite(.serialized) struct OperationsTests {
    @Test func serviceContractAndOperatorCommands() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let metricsPort = freeLoopbackPort()
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = [\"Patient\"]\npoll_interval = 3600",
            extra: "[metrics]\nlisten = \"127.0.0.1:\(metricsPort)\"")
        let notify = try NotifySocket(path: fixture.dir.file("notify.sock"))
        try fixture.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])

        // READY once the replica is open and the socket listens; then watchdog pings.
        let ready = notify.receive(until: { $0.contains("READY=1") }, timeout: 60)
        #expect(ready.last?.contains("READY=1") == true, "log:\n\(fixture.log.suffix(1500))")
        #expect(try fixture.status() != nil)
        let pings = notify.receive(until: { $0.contains("WATCHDOG=1") }, timeout: 10)
        #expect(pings.last?.contains("WATCHDOG=1") == true)
        #expect(DaemonFixture.waitUntil(timeout: 60) { (try? fixture.status())??.initialSyncComplete == true })

        // Prometheus metrics on loopback.
        let scrape = try await ServerClient(baseURL: "http://127.0.0.1:\(metricsPort)").request(.GET, "metrics")
        let exposition = String(decoding: scrape.body, as: UTF8.self)
        #expect(scrape.status == 200)
        #expect(exposition.contains(#"ehr_sync_state{state="online"} 1"#), "\(exposition.prefix(800))")
        #expect(exposition.contains("ehr_sync_initial_sync_complete 1"))
        #expect(exposition.contains("ehr_sync_http_responses_total"))

        let ctl = ["--socket", fixture.socketPath]
        #expect(try fixture.syncctl(ctl + ["pause"]).status == 0)
        #expect(try fixture.status()?.state == "paused")
        let paused = try fixture.syncctl(ctl + ["status"])
        #expect(paused.status == 1)
        #expect(paused.output.contains("PAUSED"))
        #expect(try fixture.syncctl(ctl + ["sync-now"]).status == 1)
        #expect(try fixture.syncctl(ctl + ["resume"]).status == 0)
        #expect(try fixture.syncctl(ctl + ["sync-now"]).status == 0)
        #expect(try fixture.status()?.state == "online")

        let verify = try fixture.syncctl(ctl + ["verify"])
        #expect(verify.status == 0)
        #expect(verify.output.contains("SQLite integrity: ok"))
        let held = try fixture.syncctl(ctl + ["held"])
        #expect(held.output.contains("No held changes."))

        // Recovery key: shown once.
        let backup = try fixture.syncctl(ctl + ["key", "backup"])
        #expect(backup.status == 0)
        let recoveryText = try #require(
            backup.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.split(separator: "-").count == 13 })
        let again = try fixture.syncctl(ctl + ["key", "backup"])
        #expect(again.status == 1)
        #expect(again.output.contains("already"))

        // Malformed and oversized requests get errors; the daemon carries on.
        #expect(try rawRequest(fixture.socketPath, Data("garbage\n".utf8)).contains("malformed request"))
        #expect(try rawRequest(fixture.socketPath, Data(repeating: 0x41, count: 70_000)).contains("too large"))
        // Also when the oversized line ends with its newline.
        let longLine = Data(#"{"command":""#.utf8) + Data(repeating: 0x61, count: 70_000) + Data("\"}\n".utf8)
        #expect(try rawRequest(fixture.socketPath, longLine).contains("too large"))
        #expect(
            try rawRequest(fixture.socketPath, Data(#"{"command":"drop tables"}"#.utf8 + [0x0A])).contains(
                "unknown command"))
        #expect(try fixture.status() != nil)

        // Another user cannot use the socket.
        let other = try run(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", DaemonFixture.binDir + "/syncctl"] + ctl + ["status"])
        #expect(other.status == 3)
        #expect(other.output.contains("Permission denied"))

        // Key rotation: the new key opens the replica, the old one no longer does.
        let newKey = fixture.dir.file("new.key")
        #expect(try fixture.syncctl(["key", "generate", newKey]).status == 0)
        let rotate = try fixture.syncctl(ctl + ["key", "rotate", newKey])
        #expect(rotate.status == 0, "\(rotate.output)")

        // SIGTERM: STOPPING, exit 0.
        #expect(fixture.stop(signal: SIGTERM) == 0)
        #expect(notify.receive(until: { $0.contains("STOPPING=1") }, timeout: 10).last?.contains("STOPPING=1") == true)
        #expect(throws: ReplicaError.self) { try fixture.openReplica() }
        let kek = try KeySource.file(path: newKey).load()
        let replica = try Replica.open(directory: fixture.stateDir, kek: kek, keySource: "new key")
        replica.close()
        let recovered = try #require(RecoveryKey(text: recoveryText))
        let viaRecovery = try Replica.open(
            directory: fixture.stateDir, kek: recovered.keyEncryptionKey, keySource: "recovery")
        viaRecovery.close()
    }

    @Test func sigtermDuringASlowInitialSyncExitsCleanlyAndResumes() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        proxy.setMode(.latency(milliseconds: 20_000))
        let types = try TestData.loadOrder("small")
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"), sync: "resource_types = \(typeList(types))\nbulk_export = \"off\"")
        try fixture.start()
        // Wait until a request is in flight (held 20 s by the proxy), then stop the service.
        #expect(DaemonFixture.waitUntil(timeout: 60) { !proxy.requests.isEmpty })
        let started = Date()
        #expect(fixture.stop(signal: SIGTERM) == 0)
        #expect(Date().timeIntervalSince(started) < 10, "SIGTERM must not wait for the slow request")
        #expect(fixture.log.contains("stopping"))
        proxy.setMode(.passThrough)
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(1500))")
        try await assertReplicaEqualsServer(fixture, ServerClient(baseURL: fhir.baseURL), types: types)
        try await proxy.stop()
    }

    @Test func noWatchdogPingWhileTheSyncLoopIsWedged() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        proxy.setMode(.hang)
        let fixture = try DaemonFixture(baseURL: proxy.url("/fhir"), ehr: "request_timeout = 300")
        let notify = try NotifySocket(path: fixture.dir.file("notify.sock"))
        try fixture.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        #expect(notify.receive(until: { $0.contains("READY=1") }, timeout: 60).last?.contains("READY=1") == true)
        // The first request hangs: once the last sign of life is older than WatchdogSec, the
        // daemon keeps reporting STATUS but stops pinging.
        _ = notify.receive(until: { _ in false }, timeout: 1.5)
        let later = notify.receive(until: { _ in false }, timeout: 2.5)
        #expect(!later.isEmpty, "STATUS updates continue")
        #expect(later.allSatisfy { !$0.contains("WATCHDOG=1") }, "\(later)")
        #expect(fixture.stop(signal: SIGTERM) == 0)
        proxy.setMode(.passThrough)
        try await proxy.stop()
    }
}

/// Sends raw bytes to the control socket and returns the answer.
func rawRequest(_ path: String, _ data: Data) throws -> String {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in path.utf8.enumerated() { raw[i] = b }
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
    _ = data.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var out = Data()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        out.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
}
