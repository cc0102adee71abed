import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// Stores the whole `small` practice and looks for identifying plaintext in every byte of
/// every file of the state directory.
@Suite struct NoPlaintextTests {
    @Test func stateDirectoryHoldsNoIdentifyingPlaintext() throws {
        let lines = try TestData.allLines("small")
        let needles = try PHINeedles(lines: lines)
        #expect(needles.ids.count == lines.count)
        #expect(needles.noteSamples.count == 200)
        #expect(needles.names.count > 40)
        #expect(needles.identifiers.count > 40)

        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        let outcome = try replica.records.apply(lines)
        #expect(outcome.inserted == lines.count)
        // While open (the WAL holds the pages), then after a clean close.
        var hits = try PHINeedles.find(needles.all, inFilesBelow: dir.path)
        replica.close()
        hits.formUnion(try PHINeedles.find(needles.all, inFilesBelow: dir.path))
        #expect(hits.isEmpty, "plaintext found on disk: \(hits.count) needles")
        // The scanner itself finds what is there: a plaintext copy would be caught.
        let canary = dir.file("canary.bin")
        try (Data("xx".utf8) + Data(needles.names[3].utf8) + Data(needles.ids[10].utf8))
            .write(to: URL(fileURLWithPath: canary))
        #expect(try PHINeedles.find(needles.all, inFilesBelow: dir.path).count == 2)
    }
}
