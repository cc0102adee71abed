import SyncModel
import SyncTestSupport
import Testing

/// The verdicts of an incremental cycle: which version of a resource seen several times is
/// applied (``NewestChanges``), and whether its deletions are applied or held
/// (``DeletionVerdict``).
@Suite struct IncrementalVerdictTests {
    @Test(
        arguments: [
            // (versions seen in order, the one kept)
            (["3", "2"], 0),
            (["2", "3"], 1),
            (["a", "b"], 0),
            (["2", nil], 0),
            ([nil, "2"], 0),
            (["1", "3", "2"], 1),
            (["10", "9"], 0),  // numbers, not text
        ] as [([String?], Int)])
    func newestVersionWins(versions: [String?], kept: Int) {
        var changes = NewestChanges<Int>()
        for (i, version) in versions.enumerated() { changes.record("Patient/p", version: version, i) }
        #expect(changes.inOrder == [kept])
        #expect(changes.count == 1)
    }

    @Test func oneChangePerResourceInFirstSeenOrder() {
        var changes = NewestChanges<String>()
        changes.record("Patient/b", version: "1", "b1")
        changes.record("Patient/a", version: "4", "a4")
        changes.record("Patient/b", version: "2", "b2")
        changes.record("Observation/b", version: "1", "ob1")
        #expect(changes.inOrder == ["b2", "a4", "ob1"])
    }

    /// Whatever the order versions arrive in, the highest numeric version is kept.
    @Test(arguments: 0..<8)
    func theHighestNumericVersionIsKeptInAnyOrder(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for _ in 0..<100 {
            let versions = (0..<(1 + Int(g.next() % 6))).map { _ in Int(g.next() % 20) }
            var changes = NewestChanges<Int>()
            for v in versions { changes.record("Condition/c", version: String(v), v) }
            #expect(changes.inOrder == [versions.max()!])
        }
    }

    static let limits = MassDeleteGuard(percent: 5, count: 500, floor: 10)

    @Test(arguments: [
        // (deletions, regressions, live records, verdict)
        (0, 0, 1000, DeletionVerdict.apply),
        (10, 0, 100, .apply),  // the floor
        (11, 0, 100, .hold(.massDelete)),
        (50, 0, 1000, .apply),  // 5 %
        (51, 0, 1000, .hold(.massDelete)),
        (500, 0, 100_000, .apply),  // the count
        (501, 0, 100_000, .hold(.massDelete)),
        (0, 1, 1000, .hold(.regression)),
        (1, 3, 1000, .hold(.regression)),
        (900, 1, 1000, .hold(.regression)),  // a rollback's deletions are held as a rollback
    ])
    func deletions(deletions: Int, regressions: Int, live: Int, expected: DeletionVerdict) {
        #expect(
            DeletionVerdict.decide(
                deletions: deletions, regressions: regressions, liveRecords: live, guard: Self.limits)
                == expected)
    }

    @Test func neverAppliesDeletionsOfAServerThatWentBackInTime() {
        for deletions in 0..<50 {
            for live in [0, 10, 1000] {
                #expect(
                    DeletionVerdict.decide(deletions: deletions, regressions: 1, liveRecords: live, guard: Self.limits)
                        == .hold(.regression))
            }
        }
    }
}
