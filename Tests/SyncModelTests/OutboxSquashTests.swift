import SyncModel
import Testing

/// The whole squash table: how a new local change folds into an earlier, unsent one.
@Suite struct OutboxSquashTests {
    static let table: [(OutboxOperation, OutboxOperation, OutboxSquash)] = [
        (.create, .create, .refuse),
        (.create, .update, .replace(.create)),
        (.create, .delete, .drop),
        (.update, .create, .refuse),
        (.update, .update, .replace(.update)),
        (.update, .delete, .replace(.delete)),
        (.delete, .create, .refuse),
        (.delete, .update, .refuse),
        (.delete, .delete, .refuse),
    ]

    @Test(arguments: table)
    func combines(earlier: OutboxOperation, new: OutboxOperation, expected: OutboxSquash) {
        #expect(OutboxSquash.combine(earlier: earlier, new: new) == expected)
    }

    @Test func theTableCoversEveryPair() {
        let covered = Set(Self.table.map { "\($0.0.rawValue)+\($0.1.rawValue)" })
        let all = OutboxOperation.allCases.flatMap { a in
            OutboxOperation.allCases.map { "\(a.rawValue)+\($0.rawValue)" }
        }
        #expect(covered == Set(all))
    }

    @Test func nothingFollowsADeleteAndNothingIsCreatedTwice() {
        for operation in OutboxOperation.allCases {
            #expect(OutboxSquash.combine(earlier: .delete, new: operation) == .refuse)
            #expect(OutboxSquash.combine(earlier: operation, new: .create) == .refuse)
        }
    }

    @Test func openStatesAreTheOnesStillToDecide() {
        #expect(OutboxState.allCases.filter(\.isOpen) == [.pending, .parked, .conflict])
    }
}
