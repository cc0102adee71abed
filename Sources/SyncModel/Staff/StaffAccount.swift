/// A member of the practice's staff who may use the web viewer and the local API.
public struct StaffAccount: Codable, Sendable, Equatable {
    /// Login name: lowercase letters, digits, `.`, `-`, `_`; 2 to 64 characters.
    public var name: String
    /// Shown in pages and recorded as the author of entries.
    public var displayName: String
    /// `fr` or `en`.
    public var language: String
    public var disabled: Bool
    /// What the account sees in the web viewer; accounts stored before roles are clinicians.
    public var role: ViewerRole
    public var passwordHash: String
    public var createdAt: String
    public var passwordChangedAt: String

    public init(
        name: String, displayName: String, language: String, disabled: Bool = false, role: ViewerRole = .clinician,
        passwordHash: String, createdAt: String, passwordChangedAt: String
    ) {
        self.name = name
        self.displayName = displayName
        self.language = language
        self.disabled = disabled
        self.role = role
        self.passwordHash = passwordHash
        self.createdAt = createdAt
        self.passwordChangedAt = passwordChangedAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        displayName = try c.decode(String.self, forKey: .displayName)
        language = try c.decode(String.self, forKey: .language)
        disabled = try c.decode(Bool.self, forKey: .disabled)
        role = try c.decodeIfPresent(ViewerRole.self, forKey: .role) ?? .clinician
        passwordHash = try c.decode(String.self, forKey: .passwordHash)
        createdAt = try c.decode(String.self, forKey: .createdAt)
        passwordChangedAt = try c.decode(String.self, forKey: .passwordChangedAt)
    }

    public static let languages: Set<String> = ["fr", "en"]

    public static func isValidName(_ name: String) -> Bool {
        (2...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { b in
                (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 46 || b == 45 || b == 95
            }
    }
}

/// What `syncctl user list` shows (never the hash).
public struct StaffAccountSummary: Codable, Sendable, Equatable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        displayName = try c.decode(String.self, forKey: .displayName)
        language = try c.decode(String.self, forKey: .language)
        disabled = try c.decode(Bool.self, forKey: .disabled)
        role = try c.decodeIfPresent(ViewerRole.self, forKey: .role) ?? .clinician
        createdAt = try c.decode(String.self, forKey: .createdAt)
        passwordChangedAt = try c.decode(String.self, forKey: .passwordChangedAt)
    }

    public var name: String
    public var displayName: String
    public var language: String
    public var disabled: Bool
    public var role: ViewerRole
    public var createdAt: String
    public var passwordChangedAt: String

    public init(_ account: StaffAccount) {
        name = account.name
        displayName = account.displayName
        language = account.language
        disabled = account.disabled
        role = account.role
        createdAt = account.createdAt
        passwordChangedAt = account.passwordChangedAt
    }
}
