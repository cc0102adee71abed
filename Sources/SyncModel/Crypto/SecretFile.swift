import Foundation

/// A secret kept in its own file (an EHR token, a key): owned by the service user,
/// mode 0400 or 0600, a regular file.
public enum SecretFile {
    /// Reads a secret as text, trimmed; checks ownership and permissions first.
    public static func read(path: String) throws(KeyError) -> String {
        try KeySource.checkPermissions(path: path)
        guard let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        else { throw .unreadable(source: "file \(path)", reason: "empty or not text") }
        return text
    }
}
