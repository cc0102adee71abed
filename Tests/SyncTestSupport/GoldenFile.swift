import Foundation

/// Golden screens (Litestream style): `Tests/SyncModelTests/testdata/<name>/stdout` holds the
/// expected text; `EHR_SYNC_UPDATE_GOLDEN=1` rewrites it from what the code prints now.
public enum GoldenFile {
    /// The expected text for `name`, after rewriting it with `text` when asked to.
    public static func expected(_ name: String, current text: String) throws -> String {
        let path = TestData.repositoryRoot + "/Tests/SyncModelTests/testdata/\(name)/stdout"
        if ProcessInfo.processInfo.environment["EHR_SYNC_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}
