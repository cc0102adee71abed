import Foundation
import SyncModel
import Testing

@Suite struct BackoffTests {
    @Test func fullJitterGrowsExponentiallyUpToTheCap() {
        let b = Backoff(base: 1, cap: 10, maxAttempts: 6)
        #expect(b.delay(attempt: 1, retryAfter: nil, unit: 0.999)! < 1)
        #expect(b.delay(attempt: 3, retryAfter: nil, unit: 0.5) == 2)
        #expect(b.delay(attempt: 5, retryAfter: nil, unit: 1) == 10)
        #expect(b.delay(attempt: 5, retryAfter: nil, unit: 0) == 0)
        #expect(b.delay(attempt: 6, retryAfter: nil, unit: 0.5) == nil)
    }

    @Test func retryAfterIsAFloor() {
        let b = Backoff(base: 1, cap: 10, maxAttempts: 6)
        #expect(b.delay(attempt: 1, retryAfter: 5, unit: 0.1) == 5)
        #expect(b.delay(attempt: 5, retryAfter: 120, unit: 1) == 120)
    }

    @Test func parsesRetryAfterSecondsAndDates() {
        #expect(RetryAfter.seconds("7", now: 0) == 7)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_770) == 7)
        #expect(RetryAfter.seconds("soon", now: 0) == nil)
        #expect(RetryAfter.seconds(nil, now: 0) == nil)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
    }
}

@Suite struct MassDeleteGuardTests {
    @Test(arguments: [
        (5828, 5, false), (5828, 291, false), (5828, 292, true), (1_000_000, 500, false), (1_000_000, 501, true),
        (40, 10, false), (40, 11, true), (0, 10, false),
    ])
    func holdsAboveTheLowerBound(replica: Int, deletions: Int, held: Bool) {
        #expect(MassDeleteGuard().shouldHold(deletions: deletions, replicaSize: replica) == held)
    }
}

@Suite struct SyncCursorTests {
    @Test func sinceIsServerTimeMinusOverlapInUTC() {
        let cursor = SyncCursor(serverTime: FHIRInstant.parse("2026-11-29T10:00:00+01:00")!)
        #expect(cursor.since(overlap: 120) == "2026-11-29T08:58:00.000Z")
        #expect(SyncCursor(cursor.text) == cursor)
    }

    @Test func serverTimeComesFromTheDateHeaderElseTheBundle() {
        #expect(
            SyncCursor.serverTime(
                dateHeader: "Sun, 29 Nov 2026 09:00:00 GMT", bundleLastUpdated: "2020-01-01T00:00:00Z")
                == FHIRInstant.parse("2026-11-29T09:00:00Z"))
        #expect(
            SyncCursor.serverTime(dateHeader: nil, bundleLastUpdated: "2020-01-01T00:00:00Z")
                == FHIRInstant.parse("2020-01-01T00:00:00Z"))
        #expect(SyncCursor.serverTime(dateHeader: "garbage", bundleLastUpdated: nil) == nil)
    }

    /// A `Date` header a day ahead never moves the cursor past this machine's clock (changes
    /// not yet read would be skipped); one behind is kept (re-reading is harmless). (#14)
    @Test func aServerClockAheadNeverMovesTheCursorPastNow() throws {
        let now = try #require(FHIRInstant.parse("2026-11-29T09:00:00Z"))
        #expect(
            SyncCursor.serverTime(dateHeader: "Mon, 30 Nov 2026 09:00:00 GMT", bundleLastUpdated: nil, localNow: now)
                == now)
        #expect(
            SyncCursor.serverTime(dateHeader: "Sun, 29 Nov 2026 08:30:00 GMT", bundleLastUpdated: nil, localNow: now)
                == now - 1800)
        #expect(SyncCursor.clockSkew(dateHeader: "Mon, 30 Nov 2026 09:00:00 GMT", localNow: now) == 86_400)
        #expect(SyncCursor.clockSkew(dateHeader: "Sun, 29 Nov 2026 09:02:00 GMT", localNow: now) == nil)
    }
}

@Suite struct BundlePageTests {
    @Test func splitsEntriesKeepingTheServersBytes() throws {
        let bundle = #"""
            {"resourceType":"Bundle","type":"history","total":3,"meta":{"lastUpdated":"2026-11-29T09:00:00Z"},
             "link":[{"relation":"self","url":"x"},{"relation":"next","url":"http://h/fhir/_history?_offset=3"}],
             "entry":[
               {"fullUrl":"http://h/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1","name":[{"family":"A\"b"}]},"request":{"method":"PUT","url":"Patient/p1"}},
               {"request":{"method":"DELETE","url":"Observation/o1"},"response":{"status":"204 No Content","etag":"W/\"4\""}},
               {"fullUrl":"http://h/fhir/Condition/c1","response":{"status":"410 Gone"}}
             ]}
            """#
        let page = try BundlePage.parse(Data(bundle.utf8))
        #expect(page.type == "history")
        #expect(page.total == 3)
        #expect(page.next == "http://h/fhir/_history?_offset=3")
        #expect(page.lastUpdated == "2026-11-29T09:00:00Z")
        #expect(page.entries.count == 3)
        #expect(
            page.entries[0].resource == Data(#"{"resourceType":"Patient","id":"p1","name":[{"family":"A\"b"}]}"#.utf8))
        #expect(page.entries[0].deletedReference == nil)
        #expect(page.entries[1].deletedReference == FHIRReference(type: "Observation", id: "o1"))
        #expect(page.entries[1].deletedVersion == "4")
        #expect(page.entries[2].deletedReference == FHIRReference(type: "Condition", id: "c1"))
    }

    @Test func refusesWhatIsNotABundle() {
        #expect(throws: ResourceError.unexpectedType(expected: "Bundle", got: "Patient")) {
            try BundlePage.parse(Data(#"{"resourceType":"Patient","id":"x"}"#.utf8))
        }
        #expect(throws: ResourceError.notJSON) {
            try BundlePage.parse(Data(#"{"resourceType":"Bundle","entry":[{"#.utf8))
        }
        #expect(throws: ResourceError.notJSON) { try BundlePage.parse(Data("<html>502</html>".utf8)) }
    }
}

@Suite struct JSONSlicerTests {
    @Test(arguments: [#"{"a":}"#, #"{"a":1"#, #"{"a" 1}"#, #"{"a":"x}"#, #"[1,2]"#, #"{"a":[1,{]}"#, ""])
    func malformedInputThrows(text: String) {
        #expect(throws: JSONSlicer.Error.self) { try JSONSlicer.members(of: Array(text.utf8)) }
    }

    @Test func slicesNestedValues() throws {
        let bytes = Array(#" { "a" : [1, {"b": "c\u00e9"}], "d": true, "e": null, "f": -1.5e3 } "#.utf8)
        let members = try JSONSlicer.members(of: bytes)
        #expect(members.map(\.key) == ["a", "d", "e", "f"])
        #expect(String(decoding: bytes[members[0].value], as: UTF8.self) == #"[1, {"b": "c\u00e9"}]"#)
        let inner = try JSONSlicer.elements(of: bytes, in: members[0].value)
        #expect(inner.count == 2)
        let b = try JSONSlicer.members(of: bytes, in: inner[1])
        #expect(JSONSlicer.string(in: bytes, at: b[0].value) == "cé")
    }
}

@Suite struct ServerCapabilitiesTests {
    @Test func readsHistoryExportAndSearchableTypes() throws {
        let statement = #"""
            {"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"mode":"server",
             "interaction":[{"code":"transaction"},{"code":"history-system"}],
             "operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}],
             "resource":[{"type":"Patient","interaction":[{"code":"read"},{"code":"search-type"}]},
                         {"type":"Observation","interaction":[{"code":"search-type"}]},
                         {"type":"Questionnaire","interaction":[{"code":"search-type"}]},
                         {"type":"Group","interaction":[{"code":"search-type"}],"operation":[{"name":"export"}]},
                         {"type":"Encounter","interaction":[{"code":"read"}]}]}]}
            """#
        let caps = try ServerCapabilities.parse(Data(statement.utf8))
        #expect(caps.systemHistory)
        #expect(caps.systemExport)
        #expect(caps.groupExport)
        #expect(caps.searchableTypes == ["Patient", "Observation", "Questionnaire", "Group"])
        #expect(
            caps.defaultTypes == ["Location", "Medication", "Organization", "Practitioner", "Patient", "Observation"])
    }
}
