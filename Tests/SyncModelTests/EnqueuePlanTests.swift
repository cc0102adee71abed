import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// Where a local change goes in the outbox (``EnqueuePlan``), row by row, then as a property
/// over random sequences of edits and replays: the local view always shows the last change
/// acknowledged, and every author stays on the entry that carries their edit.
@Suite struct EnqueuePlanTests {
    typealias Open = EnqueuePlan.OpenEntry

    static func open(_ operation: OutboxOperation, _ state: OutboxState = .pending, inFlight: Bool = false) -> Open {
        Open(seq: 7, operation: operation, state: state, inFlight: inFlight)
    }

    @Test(arguments: [
        // (new change, latest open entry, replica, plan)
        (OutboxOperation.create, Open?.none, EnqueuePlan.Stored.absent, EnqueuePlan.create),
        (.create, open(.update), .live, .create),
        (.update, nil, .live, .newEntry),
        (.delete, nil, .live, .newEntry),
        (.update, nil, .deleted, .refuse(.gone)),
        (.delete, nil, .deleted, .refuse(.gone)),
        (.update, nil, .absent, .refuse(.notFound)),
        (.delete, nil, .absent, .refuse(.notFound)),
        (.update, open(.delete), .live, .refuse(.gone)),
        (.delete, open(.delete, .conflict), .live, .refuse(.gone)),
        (.update, open(.delete, inFlight: true), .live, .refuse(.gone)),
        (.update, open(.create), .absent, .squash(seq: 7, operation: .create)),
        (.delete, open(.create), .absent, .drop(seq: 7)),
        (.update, open(.update), .live, .squash(seq: 7, operation: .update)),
        (.delete, open(.update), .live, .squash(seq: 7, operation: .delete)),
        (.update, open(.update, .parked), .live, .squash(seq: 7, operation: .update)),
        (.delete, open(.create, .parked), .absent, .drop(seq: 7)),
        (.update, open(.update, inFlight: true), .live, .chain(after: 7)),
        (.delete, open(.create, inFlight: true), .absent, .chain(after: 7)),
        (.update, open(.update, .conflict), .live, .chain(after: 7)),
        (.delete, open(.create, .conflict), .absent, .chain(after: 7)),
    ])
    func row(operation: OutboxOperation, open: Open?, stored: EnqueuePlan.Stored, expected: EnqueuePlan) {
        #expect(EnqueuePlan.plan(operation, open: open, stored: stored) == expected)
    }

    static var everyOpenEntry: [Open?] {
        var all: [Open?] = [nil]
        for operation in OutboxOperation.allCases {
            for state in [OutboxState.pending, .parked, .conflict] {
                for inFlight in [false, true] {
                    all.append(Open(seq: 3, operation: operation, state: state, inFlight: inFlight))
                }
            }
        }
        return all
    }

    /// Properties over every combination: an entry being sent or in review never absorbs an
    /// edit, a plan only names the open entry, and a create always gets its own entry.
    @Test func everyCombination() {
        for operation in OutboxOperation.allCases {
            for open in Self.everyOpenEntry {
                for stored in EnqueuePlan.Stored.allCases {
                    let plan = EnqueuePlan.plan(operation, open: open, stored: stored)
                    if operation == .create {
                        #expect(plan == .create)
                        continue
                    }
                    switch plan {
                    case .squash(let seq, _), .drop(let seq):
                        #expect(seq == open?.seq)
                        #expect(open?.inFlight == false && open?.state != .conflict)
                    case .chain(let after):
                        #expect(after == open?.seq)
                        #expect(open?.inFlight == true || open?.state == .conflict)
                    case .newEntry:
                        #expect(open == nil && stored == .live)
                    case .refuse(.notFound):
                        #expect(open == nil && stored == .absent)
                    case .refuse(.gone):
                        #expect(open?.operation == .delete || (open == nil && stored == .deleted))
                    case .create:
                        Issue.record("a create plan for an \(operation)")
                    }
                }
            }
        }
    }

    // MARK: Payloads

    @Test func squashingKeepsBaseAndIdentityAddsTheAuthorAndForgetsTheRejection() {
        var earlier = OutboxPayload(
            localID: "p1", serverID: "p1", resource: Data("{\"a\":1}".utf8), base: Data("{}".utf8), baseVersion: "4",
            after: nil, references: ["Patient/x"], clientIdentifier: "urn:uuid:1", authors: Authors("alice"),
            localTime: "2026-01-01T00:00:00Z")
        earlier.reason = "HTTP 422: bad code"
        earlier.outcome = Data("{}".utf8)
        earlier.force = true
        let squashed = earlier.squashing(
            resource: Data("{\"a\":2}".utf8), references: [], author: "bob", localTime: "2026-01-02T00:00:00Z")
        #expect(squashed.resource == Data("{\"a\":2}".utf8))
        #expect(squashed.references.isEmpty)
        #expect(squashed.authors.names == ["alice", "bob"])
        #expect(squashed.localTime == "2026-01-02T00:00:00Z")
        #expect(squashed.base == earlier.base && squashed.baseVersion == "4")
        #expect(squashed.localID == "p1" && squashed.clientIdentifier == "urn:uuid:1")
        #expect(squashed.reason == nil && squashed.outcome == nil && squashed.force == nil)
        // The same author twice is listed once.
        #expect(
            squashed.squashing(resource: nil, references: [], author: "alice", localTime: "t").authors.names
                == ["alice", "bob"])
    }

    @Test func aChainedEditStartsFromTheEntryItFollows() {
        let open = OutboxEntry(
            seq: 12, operation: .create, state: .pending, resourceType: "Observation",
            payload: .create(
                localID: "l1", resource: Data("{\"v\":1}".utf8), references: [], clientIdentifier: "urn:uuid:c",
                author: "alice", localTime: "t0"),
            updatedAt: "t0")
        let chained = OutboxPayload.chained(
            after: open, resource: Data("{\"v\":2}".utf8), references: [], clientIdentifier: "urn:uuid:d",
            author: "bob", localTime: "t1")
        #expect(chained.after == 12)
        #expect(chained.base == Data("{\"v\":1}".utf8))
        #expect(chained.baseVersion == nil)
        #expect(chained.localID == "l1" && chained.serverID == nil)
        #expect(chained.authors.names == ["bob"])
    }

    @Test func authorsReadTheStoredTextAndWriteItBack() throws {
        let authors = Authors(text: " alice ;bob; ;alice")
        #expect(authors.names == ["alice", "bob"])
        #expect(authors.description == "alice; bob")
        let encoded = try JSONEncoder().encode(["author": authors])
        #expect(String(decoding: encoded, as: UTF8.self) == #"{"author":"alice; bob"}"#)
        #expect(try JSONDecoder().decode([String: Authors].self, from: encoded)["author"] == authors)
    }

    // MARK: Property: nothing acknowledged is lost

    /// One resource's outbox, executed the way the store executes plans.
    struct Model {
        struct Entry {
            var seq: Int64
            var operation: OutboxOperation
            var state: OutboxState
            var content: Int?
            var authors: Authors
        }
        var server: Int?  // nil: absent or deleted on the server
        var serverDeleted = false
        var entries: [Entry] = []
        var inFlight: Int64?
        var nextSeq: Int64 = 1

        var latestOpen: Entry? { entries.last { $0.state.isOpen } }

        /// What a local read shows: the latest open entry over the server's version.
        var localView: Int? {
            if let open = latestOpen { return open.operation == .delete ? nil : open.content }
            return server
        }

        mutating func enqueue(_ operation: OutboxOperation, content: Int?, author: String) -> EnqueuePlan {
            let open = latestOpen.map {
                EnqueuePlan.OpenEntry(
                    seq: $0.seq, operation: $0.operation, state: $0.state, inFlight: $0.seq == inFlight)
            }
            let stored: EnqueuePlan.Stored = server != nil ? .live : serverDeleted ? .deleted : .absent
            let plan = EnqueuePlan.plan(operation, open: open, stored: stored)
            switch plan {
            case .create, .newEntry, .chain:
                entries.append(
                    Entry(
                        seq: nextSeq, operation: operation, state: .pending, content: content, authors: Authors(author))
                )
                nextSeq += 1
            case .squash(let seq, let combined):
                let i = entries.firstIndex { $0.seq == seq }!
                entries[i].operation = combined
                entries[i].state = .pending
                entries[i].content = content
                entries[i].authors.append(author)
            case .drop(let seq):
                entries[entries.firstIndex { $0.seq == seq }!].state = .discarded
            case .refuse:
                break
            }
            return plan
        }

        /// Replay sends the oldest open entry (its predecessors are done).
        mutating func startSending() {
            guard inFlight == nil, let first = entries.first(where: { $0.state == .pending }),
                entries.first(where: { $0.state.isOpen })?.seq == first.seq
            else { return }
            inFlight = first.seq
        }

        mutating func finishSending(conflict: Bool) {
            guard let seq = inFlight, let i = entries.firstIndex(where: { $0.seq == seq }) else { return }
            inFlight = nil
            if conflict {
                entries[i].state = .conflict
                return
            }
            entries[i].state = .done
            if entries[i].operation == .delete {
                server = nil
                serverDeleted = true
            } else {
                server = entries[i].content
            }
        }

        mutating func resolveKeepingLocal() {
            guard let i = entries.firstIndex(where: { $0.state == .conflict }) else { return }
            entries[i].state = .pending
        }
    }

    @Test(arguments: 0..<16)
    func theLocalViewIsAlwaysTheLastAcknowledgedChange(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        var model = Model()
        var expected: Int?
        if g.next() % 2 == 0 {
            model.server = 0
            expected = 0
        } else {
            _ = model.enqueue(.create, content: 0, author: "alice")
            expected = 0
        }
        let authors = ["alice", "bob", "carol"]
        for step in 1...60 {
            switch g.next() % 7 {
            case 0, 1, 2:
                let author = authors[Int(g.next() % 3)]
                let operation: OutboxOperation = g.next() % 5 == 0 ? .delete : .update
                let content = operation == .delete ? nil : step
                let plan = model.enqueue(operation, content: content, author: author)
                if case .refuse(let refusal) = plan {
                    // Refused only when the resource is gone for the practice.
                    #expect(expected == nil, "seed \(seed) step \(step): refused \(refusal) a live resource")
                } else {
                    expected = content
                    #expect(model.latestOpen == nil || model.latestOpen?.authors.names.contains(author) == true)
                }
            case 3: model.startSending()
            case 4: model.finishSending(conflict: false)
            case 5: model.finishSending(conflict: true)
            default: model.resolveKeepingLocal()
            }
            #expect(model.localView == expected, "seed \(seed) step \(step)")
            // At most one open entry is not waiting behind another.
            #expect(
                model.entries.filter { $0.state.isOpen && $0.seq != model.inFlight && $0.state != .conflict }
                    .count <= 2)
        }
    }
}
