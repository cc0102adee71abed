public import Foundation

/// The Synthea practices in `../shared/fhir-data/<set>` (or `$EHR_SYNC_FHIR_DATA/<set>`),
/// for tests and benchmarks only: the product never needs them.
public enum TestData {
    /// The repository root, found from this file's path.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Folder holding the data sets.
    public static var root: String {
        if let override = ProcessInfo.processInfo.environment["EHR_SYNC_FHIR_DATA"], !override.isEmpty {
            return override
        }
        return URL(fileURLWithPath: repositoryRoot).deletingLastPathComponent()
            .appendingPathComponent("shared/fhir-data").path
    }

    /// Folder of one set, e.g. `small`.
    public static func folder(_ set: String) -> String { root + "/" + set }

    /// Resource types in the set's load order.
    public static func loadOrder(_ set: String) throws -> [String] {
        try String(contentsOfFile: folder(set) + "/load_order.txt", encoding: .utf8)
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// Every NDJSON line of one type, as raw bytes.
    public static func lines(_ set: String, type: String) throws -> [Data] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder(set) + "/\(type).ndjson"))
        return data.split(separator: UInt8(ascii: "\n")).filter { !$0.isEmpty }.map { Data($0) }
    }

    /// Every resource of the set, in load order.
    public static func allLines(_ set: String) throws -> [Data] {
        try loadOrder(set).flatMap { try lines(set, type: $0) }
    }
}

/// A temporary directory removed when the value is released.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "ehr-sync-test") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = base.path
    }

    public func file(_ name: String) -> String { path + "/" + name }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
