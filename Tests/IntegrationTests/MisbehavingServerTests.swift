import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// A misbehaving EHR, through the fault proxy (#14): a Bundle whose `next` link loops, a 200
/// carrying an OperationOutcome where a Bundle belongs, hostile resources (10 000-deep
/// nesting, invalid UTF-8, one larger than `max_resource_bytes`), a server that accepts the
/// connection and sends nothing. Each: a clear log line, bounded memory, the other types
/// copied; once the server behaves, the copy completes and equals it.
@Suite(.serialized) struct MisbehavingServerTests {
    static let types = ["Patient", "Encounter", "Observation", "Condition"]

    static func bundle(entries: [String], next: String?) -> Data {
        var text = #"{"resourceType":"Bundle","type":"searchset","entry":["#
        text += entries.map { #"{"resource":"# + $0 + "}" }.joined(separator: ",") + "]"
        if let next { text += #","link":[{"relation":"next","url":""# + next + #""}]"# }
        return Data((text + "}").utf8)
    }

    static func firstPage(_ type: String) -> @Sendable (ProxyRequest) -> Bool {
        { $0.uri.hasSuffix("/\(type)?_sort=_id&_count=100") }
    }

    @Test func aMisbehavingServerIsContainedAndTheRestIsCopied() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"),
            sync: "resource_types = \(typeList(Self.types))\npage_size = 100\nbulk_export = \"off\"\npoll_interval = 2",
            ehr: "request_timeout = 4\nmax_resource_bytes = 4194304")
        let json = "application/fhir+json"
        // Encounter: the first page links to itself, forever.
        proxy.inject(
            .respond(
                status: 200, contentType: json,
                body: Self.bundle(entries: [], next: proxy.url("/fhir/Encounter?_sort=_id&_count=100"))),
            times: 1000, when: Self.firstPage("Encounter"))
        // Condition: a 200 whose body is an OperationOutcome.
        let outcome = #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}"#
        proxy.inject(
            .respond(status: 200, contentType: json, body: Data(outcome.utf8)), times: 1000,
            when: Self.firstPage("Condition"))
        // Observation: hostile resources first, then the real pages (asked for 99 at a time).
        let deep =
            #"{"resourceType":"Observation","id":"deep","status":"final","code":{"text":"x"},"extension":"#
            + String(repeating: #"[{"extension":"#, count: 10_000) + "[]" + String(repeating: "}]", count: 10_000)
            + "}"
        let invalid =
            Data(#"{"resourceType":"Observation","id":"bad-utf8","status":"final","code":{"text":"#.utf8)
            + Data([0x22, 0xFF, 0xFE, 0x22]) + Data("}}".utf8)
        let huge =
            #"{"resourceType":"Observation","id":"huge","status":"final","code":{"text":"x"},"note":[{"text":""#
            + String(repeating: "a", count: 6 << 20) + #""}]}"#
        // Observation: a page with a 10 000-deep resource, refused whole with the reason.
        proxy.inject(
            .respond(status: 200, contentType: json, body: Self.bundle(entries: [deep], next: nil)), times: 1000,
            when: Self.firstPage("Observation"))
        // Patient: the first request is accepted and never answered.
        proxy.inject(.hang, times: 1, when: Self.firstPage("Patient"))
        // Then Patient's first page holds a resource that is not UTF-8 and one larger than the
        // limit, before the real pages (asked for 99 at a time): those two are skipped and counted.
        let next = proxy.url("/fhir/Patient?_sort=_id&_count=99")
        var page = Data(#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":"#.utf8) + invalid
        page += Data(#"},{"resource":"#.utf8) + Data(huge.utf8)
        page += Data(#"}],"link":[{"relation":"next","url":""#.utf8) + Data(next.utf8) + Data(#""}]}"#.utf8)
        proxy.inject(.respond(status: 200, contentType: json, body: page), times: 1000, when: Self.firstPage("Patient"))

        try fixture.start()
        defer { fixture.stop() }
        var report: StatusReport?
        let contained = DaemonFixture.waitUntil(timeout: 120, interval: 0.2) {
            report = (try? fixture.status()) ?? nil
            let done = Dictionary(
                uniqueKeysWithValues: (report?.initialSync?.types ?? []).map { ($0.type, $0.done) })
            return (done["Patient"] ?? 0) > 0 && fixture.log.contains("paging loops")
                && fixture.log.contains("expected Bundle, got OperationOutcome")
                && fixture.log.contains("type=Observation")
                // The cycle's end, where the partial copy is reported.
                && report?.lastError?.contains("the first copy is partial") == true
        }
        #expect(contained, "\(String(describing: report))\nlog:\n\(fixture.log.suffix(4000))")
        let log = fixture.log
        #expect(log.contains("type not copied this cycle") && log.contains("type=Encounter"))
        #expect(log.contains("type=Condition"))
        #expect(log.contains("not valid UTF-8") && log.contains("exceeds the limit"), "\(log.suffix(4000))")
        #expect(report?.initialSyncComplete == false)
        #expect(
            report?.lastError?.contains("the first copy is partial") == true, "\(String(describing: report?.lastError))"
        )
        #expect((report?.rejectedResources ?? 0) >= 2, "invalid and huge resources are skipped and counted")
        // Bounded memory: the daemon's peak resident set.
        if let peak = Self.peakResidentMegabytes(of: fixture) {
            #expect(peak < 1024, "peak RSS \(peak) MB")
        }

        // The server behaves again: the copy completes and equals it.
        proxy.clearInjections()
        let complete = DaemonFixture.waitUntil(timeout: 180, interval: 0.2) {
            ((try? fixture.status())??.initialSyncComplete ?? false)
        }
        #expect(complete, "log:\n\(fixture.log.suffix(3000))")
        fixture.stop()
        #expect(try fixture.runOnce() == 0)
        try await assertReplicaEqualsServer(fixture, ServerClient(baseURL: fhir.baseURL), types: Self.types)
        try await proxy.stop()
    }

    /// VmHWM of the daemon started by `fixture`, in MB (nil when it cannot be read).
    static func peakResidentMegabytes(of fixture: DaemonFixture) -> Int? {
        guard let found = try? run("/usr/bin/pgrep", ["-f", fixture.dir.file("ehr-sync.toml")]),
            let pid = found.output.split(separator: "\n").first.map(String.init),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 / 1024 }
    }
}
