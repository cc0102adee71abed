import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// Stores the whole `small` practice and looks for identifying plaintext in every byte of
/// every file of the state directory.
@Suite struct NoPlaintextTests {
    @Test func stateDirectoryHoldsNoIdentifyingPlaintext() throws {
        let lines = try TestData.allLines("small")
        let needles = try Self.needles(from: lines)
        #expect(needles.ids.count == lines.count)
        #expect(needles.noteSamples.count == 200)
        #expect(needles.names.count > 40)
        #expect(needles.identifiers.count > 40)

        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        let outcome = try replica.apply(lines)
        #expect(outcome.inserted == lines.count)
        let all = needles.ids + needles.names + needles.identifiers + needles.noteSamples
        // While open (the WAL holds the pages), then after a clean close.
        var hits = try Self.scan(directory: dir.path, for: all)
        replica.close()
        hits += try Self.scan(directory: dir.path, for: all)
        #expect(hits.isEmpty, "plaintext found on disk: \(hits.count) needles")
        // The scanner itself finds what is there: a plaintext copy would be caught.
        let canary = dir.file("canary.bin")
        try (Data("xx".utf8) + Data(needles.names[3].utf8) + Data(needles.ids[10].utf8)).write(
            to: URL(fileURLWithPath: canary))
        #expect(try Self.scan(directory: dir.path, for: all).count == 2)
    }

    struct Needles {
        var ids: [String] = []
        var names: [String] = []
        var identifiers: [String] = []
        var noteSamples: [String] = []
    }

    static func needles(from lines: [Data]) throws -> Needles {
        var n = Needles()
        var names = Set<String>()
        var identifiers = Set<String>()
        var notes: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
            n.ids.append(try #require(object["id"] as? String))
            let type = object["resourceType"] as? String
            if type == "Patient" {
                for name in object["name"] as? [[String: Any]] ?? [] {
                    if let family = name["family"] as? String { names.insert(family) }
                    for given in name["given"] as? [String] ?? [] { names.insert(given) }
                }
                for identifier in object["identifier"] as? [[String: Any]] ?? [] {
                    if let value = identifier["value"] as? String { identifiers.insert(value) }
                }
            }
            if type == "DocumentReference" {
                for content in object["content"] as? [[String: Any]] ?? [] {
                    if let attachment = content["attachment"] as? [String: Any],
                        let b64 = attachment["data"] as? String,
                        let text = Data(base64Encoded: b64).flatMap({ String(data: $0, encoding: .utf8) })
                    {
                        notes.append(text)
                    }
                }
            }
        }
        n.names = names.filter { $0.utf8.count >= 4 }.sorted()
        n.identifiers = identifiers.filter { $0.utf8.count >= 4 }.sorted()
        // 200 samples of 24 characters, spread over the notes.
        var generator = SeededGenerator(seed: 42)
        while n.noteSamples.count < 200, !notes.isEmpty {
            let note = Array(notes[Int.random(in: 0..<notes.count, using: &generator)].utf8)
            guard note.count > 48 else { continue }
            let start = Int.random(in: 0..<(note.count - 24), using: &generator)
            if let sample = String(bytes: note[start..<(start + 24)], encoding: .utf8),
                sample.trimmingCharacters(in: .whitespacesAndNewlines).count >= 16
            {
                n.noteSamples.append(sample)
            }
        }
        return n
    }

    /// Needles found in any file below `directory`, by one pass over each file using a
    /// 4-byte prefix table.
    static func scan(directory: String, for needles: [String]) throws -> [String] {
        var table: [UInt32: [[UInt8]]] = [:]
        for needle in needles {
            let bytes = Array(needle.utf8)
            guard bytes.count >= 4 else { continue }
            table[prefix(bytes, 0), default: []].append(bytes)
        }
        var found = Set<String>()
        let files = try FileManager.default.subpathsOfDirectory(atPath: directory)
        for file in files {
            let path = directory + "/" + file
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            guard data.count >= 4 else { continue }
            for i in 0...(data.count - 4) {
                guard let candidates = table[prefix(data, i)] else { continue }
                for needle in candidates where i + needle.count <= data.count {
                    if data[i..<(i + needle.count)].elementsEqual(needle) {
                        found.insert(String(decoding: needle, as: UTF8.self))
                    }
                }
            }
        }
        return found.sorted()
    }

    static func prefix(_ bytes: [UInt8], _ i: Int) -> UInt32 {
        UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    }
}

/// SplitMix64: deterministic samples across runs.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49EB_133B_111F
        return z ^ (z >> 31)
    }
}
