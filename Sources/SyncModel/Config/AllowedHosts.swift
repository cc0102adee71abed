/// The names a browser or client may use to reach the local API and the viewer (the `Host`
/// header). Anything else is refused before a route runs: a page on another site cannot use
/// DNS rebinding to read the replica through a staff member's browser, and the `Host`
/// reflected into Bundle links is always one the practice chose.
public struct AllowedHosts: Sendable, Equatable {
    /// Lower-case host names and IP literals (IPv6 without brackets).
    public private(set) var names: Set<String>

    public init(_ names: some Sequence<String>) {
        self.names = Set(names.map { Self.bare($0.lowercased()) })
    }

    /// Whether the `Host` header's authority (`name`, `name:port`, `[::1]:port`) is allowed.
    public func allows(authority: String?) -> Bool {
        guard let authority, let host = Self.host(of: authority) else { return false }
        return names.contains(host)
    }

    /// The host of an authority, lower-cased, without port or IPv6 brackets; nil when malformed.
    static func host(of authority: String) -> String? {
        let text = authority.lowercased()
        guard !text.isEmpty, !text.contains("@"), !text.contains("/") else { return nil }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else { return nil }
            return String(text[text.index(after: text.startIndex)..<close])
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else { return nil }
        if parts.count == 2, parts[1].isEmpty || !parts[1].allSatisfy(\.isNumber) { return nil }
        return String(name.hasSuffix(".") ? name.dropLast() : name)
    }

    static func bare(_ name: String) -> String {
        name.hasPrefix("[") && name.hasSuffix("]") ? String(name.dropFirst().dropLast()) : name
    }
}
