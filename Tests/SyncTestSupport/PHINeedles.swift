public import Foundation

/// Identifying strings of a data set — every resource id, Patient name part and identifier
/// value, and samples of note text — and a scanner that looks for them in bytes.
public struct PHINeedles: Sendable {
    public var ids: [String] = []
    public var names: [String] = []
    public var identifiers: [String] = []
    public var noteSamples: [String] = []

    public var all: [String] { ids + names + identifiers + noteSamples }

    public init(lines: [Data], noteSamples sampleCount: Int = 200) throws {
        var names = Set<String>()
        var identifiers = Set<String>()
        var notes: [String] = []
        for line in lines {
            guard let object = try JSONSerialization.jsonObject(with: line) as? [String: Any],
                let id = object["id"] as? String
            else { continue }
            ids.append(id)
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
        self.names = names.filter { $0.utf8.count >= 4 }.sorted()
        self.identifiers = identifiers.filter { $0.utf8.count >= 4 }.sorted()
        var generator = SeededGenerator(seed: 42)
        while self.noteSamples.count < sampleCount, !notes.isEmpty {
            let note = Array(notes[Int.random(in: 0..<notes.count, using: &generator)].utf8)
            guard note.count > 48 else { continue }
            let start = Int.random(in: 0..<(note.count - 24), using: &generator)
            if let sample = String(bytes: note[start..<(start + 24)], encoding: .utf8),
                sample.trimmingCharacters(in: .whitespacesAndNewlines).count >= 16
            {
                self.noteSamples.append(sample)
            }
        }
    }

    /// Needles found in `bytes`, in one pass using a 4-byte prefix table.
    public static func find(_ needles: [String], in data: [UInt8]) -> Set<String> {
        var table: [UInt32: [[UInt8]]] = [:]
        for needle in needles {
            let bytes = Array(needle.utf8)
            guard bytes.count >= 4 else { continue }
            table[prefix(bytes, 0), default: []].append(bytes)
        }
        var found = Set<String>()
        guard data.count >= 4 else { return found }
        for i in 0...(data.count - 4) {
            guard let candidates = table[prefix(data, i)] else { continue }
            for needle in candidates where i + needle.count <= data.count {
                if data[i..<(i + needle.count)].elementsEqual(needle) {
                    found.insert(String(decoding: needle, as: UTF8.self))
                }
            }
        }
        return found
    }

    /// Needles found in any file below `directory`.
    public static func find(_ needles: [String], inFilesBelow directory: String) throws -> Set<String> {
        var found = Set<String>()
        for file in try FileManager.default.subpathsOfDirectory(atPath: directory) {
            let path = directory + "/" + file
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            found.formUnion(find(needles, in: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
        }
        return found
    }

    static func prefix(_ bytes: [UInt8], _ i: Int) -> UInt32 {
        UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    }
}

/// SplitMix64: deterministic samples across runs.
public struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49EB_133B_111F
        return z ^ (z >> 31)
    }
}
