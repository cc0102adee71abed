/// Which resource types of the EHR the replica holds, and how: learned from the
/// CapabilityStatement *and* from the server's answers, never from one declaration alone.
/// A plain value, kept in the replica's sync state and shown by status.
public struct TypeCoverage: Codable, Sendable, Equatable {
    /// How one type is listed.
    public enum Access: String, Codable, Sendable, Equatable {
        /// By type searches (and by an export or `_history` when the server has them).
        case search
        /// Only patient by patient (`Type?patient=`): the server refuses searches of the whole type.
        case perPatient = "per-patient"
        /// The server serves the type but refuses every way tried of listing it: the mirror
        /// is partial.
        case refused
        /// The server does not serve it (404/405/501 on a search; or an over-declaration).
        case absent
        /// Left out by the practice's configuration.
        case excluded
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var type: String
        public var access: Access
        /// Listed in the CapabilityStatement with `search-type`.
        public var declared: Bool
        /// The server's words (OperationOutcome, or the HTTP status) when it refused.
        public var reason: String?
        /// The server refuses `_lastUpdated` on this type: its changes are found by listing
        /// it whole each cycle.
        public var withoutLastUpdated: Bool?

        public init(
            type: String, access: Access, declared: Bool, reason: String? = nil, withoutLastUpdated: Bool? = nil
        ) {
            self.type = type
            self.access = access
            self.declared = declared
            self.reason = reason
            self.withoutLastUpdated = withoutLastUpdated
        }
    }

    /// In mirror order (reference types, Patient, then the rest alphabetically).
    public private(set) var entries: [Entry] = []

    public init(entries: [Entry] = []) {
        self.entries = []
        for entry in entries { set(entry) }
    }

    public subscript(type: String) -> Entry? { entries.first { $0.type == type } }

    /// Adds or replaces a type's entry, keeping mirror order.
    public mutating func set(_ entry: Entry) {
        if let index = entries.firstIndex(where: { $0.type == entry.type }) {
            entries[index] = entry
        } else {
            entries.append(entry)
            entries.sort { Self.order($0.type) < Self.order($1.type) }
        }
    }

    /// Changes how a known type is listed (a type not known yet is added as undeclared).
    public mutating func mark(_ type: String, _ access: Access, reason: String? = nil) {
        var entry = self[type] ?? Entry(type: type, access: access, declared: false)
        entry.access = access
        entry.reason = reason
        set(entry)
    }

    /// Records that the server refuses `_lastUpdated` on a type.
    public mutating func markWithoutLastUpdated(_ type: String, reason: String) {
        guard var entry = self[type] else { return }
        entry.withoutLastUpdated = true
        entry.reason = reason
        set(entry)
    }

    /// Types copied into the replica, in mirror order.
    public var mirrored: [String] { entries.filter { $0.access == .search || $0.access == .perPatient }.map(\.type) }
    /// Types listed patient by patient.
    public var perPatient: [String] { entries.filter { $0.access == .perPatient }.map(\.type) }
    /// Types mirrored that the CapabilityStatement does not declare.
    public var undeclared: [String] {
        entries.filter { ($0.access == .search || $0.access == .perPatient) && !$0.declared }.map(\.type)
    }
    /// Types the server serves but would not list, with its reason.
    public var refused: [Entry] { entries.filter { $0.access == .refused } }
    /// Types declared but not served.
    public var absentDeclared: [String] { entries.filter { $0.access == .absent && $0.declared }.map(\.type) }
    public var excluded: [String] { entries.filter { $0.access == .excluded }.map(\.type) }
    /// A served type is neither mirrored nor deliberately excluded.
    public var isPartial: Bool { !refused.isEmpty }

    /// Sort key of the mirror order: what records point at first, then Patient, then the rest.
    static func order(_ type: String) -> (Int, String) {
        if ServerCapabilities.referenceTypes.contains(type) { return (0, type) }
        if type == "Patient" { return (1, type) }
        return (2, type)
    }
}

extension TypeCoverage {
    /// One line for status and logs: "24 types mirrored (2 undeclared: CareTeam, Composition);
    /// refused: Device (…)".
    public var summary: String {
        var text = "\(mirrored.count) types mirrored"
        if !perPatient.isEmpty { text += ", \(perPatient.count) patient by patient" }
        if !undeclared.isEmpty { text += "; found undeclared: " + undeclared.joined(separator: ", ") }
        if !refused.isEmpty {
            text +=
                "; REFUSED by the EHR: "
                + refused.map { "\($0.type) (\($0.reason ?? "no reason given"))" }.joined(separator: ", ")
        }
        if !excluded.isEmpty { text += "; skipped by configuration: " + excluded.joined(separator: ", ") }
        return text
    }
}
