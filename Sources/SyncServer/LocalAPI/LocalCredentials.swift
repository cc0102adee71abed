import Crypto
import Foundation
import SyncEngine
public import SyncModel
import SyncStore

/// The local API's bearer credentials: one `author token` pair a line in a file owned by
/// the service user (or root) with mode 0600/0400. `#` starts a comment. A line with only a
/// token stands for the author `local-api`.
///
/// Tokens are kept as SHA-256 digests and compared in constant time.
public struct LocalCredentials: Sendable {
    let authors: [(digest: SHA256.Digest, author: String)]

    /// Shortest token accepted, in characters.
    public static let minimumTokenLength = 24

    public init(text: String, file: String) throws(KeyError) {
        var authors: [(SHA256.Digest, String)] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count <= 2 else {
                throw .unreadable(source: "file \(file)", reason: "line \(number + 1): expected `author token`")
            }
            let token = String(fields.last!)
            guard token.count >= Self.minimumTokenLength else {
                throw .unreadable(
                    source: "file \(file)",
                    reason: "line \(number + 1): tokens must be at least \(Self.minimumTokenLength) characters")
            }
            authors.append((SHA256.hash(data: Data(token.utf8)), fields.count == 2 ? String(fields[0]) : "local-api"))
        }
        guard !authors.isEmpty else { throw .unreadable(source: "file \(file)", reason: "no credentials in it") }
        self.authors = authors
    }

    /// Reads the file after checking its owner and mode.
    public static func load(path: String) throws(KeyError) -> LocalCredentials {
        let text = try SecretFile.read(path: path)
        return try LocalCredentials(text: text, file: path)
    }

    /// The author of a bearer token, or nil.
    public func author(forAuthorization header: String?) -> String? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        let digest = SHA256.hash(data: Data(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8))
        var found: String?
        for (candidate, author) in authors where candidate == digest { found = author }
        return found
    }
}
