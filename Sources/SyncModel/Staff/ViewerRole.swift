/// What a viewer account may see and do in the web viewer.
///
/// - `clinician`: everything clinical (summary, print, day sheet, attachments) and downtime
///   entry. The default, and the meaning of accounts created before roles existed.
/// - `reception`: patient search, demographics and day lists (who is booked, when), never
///   clinical content: the viewer loads only the patient's own record for it, so allergies,
///   problems, medications, results and notes never leave the replica for this account.
public enum ViewerRole: String, Codable, Sendable, CaseIterable {
    case clinician
    case reception

    /// The resource types a page may load for this role (nil: every type the page shows).
    public var readableTypes: Set<String>? {
        switch self {
        case .clinician: nil
        case .reception: ["Patient"]
        }
    }

    /// Whether clinical sections, attachments and clinical print-outs are shown.
    public var seesClinicalContent: Bool { self == .clinician }

    /// Whether the account may write downtime entries.
    public var mayEnterNotes: Bool { self == .clinician }

    /// The role a control request names: nil when the text is none of them.
    public init?(name: String) {
        self.init(rawValue: name.lowercased())
    }
}
