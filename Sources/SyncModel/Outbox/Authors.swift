import Foundation

/// Who made a queued change: one name per credential, in the order they edited it. Several
/// local edits squashed into one entry keep every author.
///
/// Sealed in the outbox payload as one `"; "`-separated text (the format since the first
/// schema), so entries written by earlier versions read back unchanged.
public struct Authors: Sendable, Equatable, Codable, CustomStringConvertible {
    public private(set) var names: [String]

    public init(_ names: [String]) {
        self.names = []
        for name in names { append(name) }
    }

    public init(_ name: String) { self.init([name]) }

    /// Parses the stored text: names separated by `;`, blanks trimmed, empty ones dropped.
    public init(text: String) {
        self.init(text.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// Adds an author who is not listed yet.
    public mutating func append(_ name: String) {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !names.contains(name) else { return }
        names.append(name)
    }

    /// `alice; bob`
    public var description: String { names.joined(separator: "; ") }

    public init(from decoder: any Decoder) throws {
        self.init(text: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
