import Crypto
import Foundation
import SyncEngine
public import SyncModel
import SyncStore

/// The local API's bearer credentials: one `author token [scope]` line each in a file owned
/// by the service user (or root) with mode 0600/0400. `#` starts a comment. A line with only
/// a token stands for the author `local-api`. The scope is `read`, `write` or `read,write`;
/// a line without one may read and write (as before scopes existed).
///
/// Tokens are kept as SHA-256 digests and compared in constant time.
public struct LocalCredentials: Sendable {
    /// What a token may do.
    public struct Scope: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let read = Scope(rawValue: 1)
        public static let write = Scope(rawValue: 2)
        public static let all: Scope = [.read, .write]

        /// `read`, `write`, `read,write` (either order); nil for anything else.
        public init?(text: String) {
            var scope: Scope = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                switch part.trimmingCharacters(in: .whitespaces) {
                case "read": scope.insert(.read)
                case "write": scope.insert(.write)
                default: return nil
                }
            }
            self = scope
        }
    }

    /// Who a token names and what it may do.
    public struct Grant: Sendable, Equatable {
        public var author: String
        public var scope: Scope
    }

    let authors: [(digest: SHA256.Digest, grant: Grant)]

    /// Shortest token accepted, in characters.
    public static let minimumTokenLength = 24

    public init(text: String, file: String) throws(KeyError) {
        var authors: [(SHA256.Digest, Grant)] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count <= 3 else {
                throw .unreadable(
                    source: "file \(file)",
                    reason: "line \(number + 1): expected `author token [read|write|read,write]`")
            }
            var scope = Scope.all
            if fields.count == 3 {
                guard let parsed = Scope(text: String(fields[2])), !parsed.isEmpty else {
                    throw .unreadable(
                        source: "file \(file)",
                        reason: "line \(number + 1): the scope must be read, write or read,write")
                }
                scope = parsed
            }
            let token = String(fields[fields.count == 3 ? 1 : fields.count - 1])
            guard token.count >= Self.minimumTokenLength else {
                throw .unreadable(
                    source: "file \(file)",
                    reason: "line \(number + 1): tokens must be at least \(Self.minimumTokenLength) characters")
            }
            authors.append(
                (
                    SHA256.hash(data: Data(token.utf8)),
                    Grant(author: fields.count >= 2 ? String(fields[0]) : "local-api", scope: scope)
                ))
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
        grant(forAuthorization: header)?.author
    }

    /// Who a bearer token names and what it may do, or nil.
    public func grant(forAuthorization header: String?) -> Grant? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        let digest = SHA256.hash(data: Data(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8))
        var found: Grant?
        for (candidate, grant) in authors where candidate == digest { found = grant }
        return found
    }
}
