/// A member of the practice's staff who may use the web viewer and the local API.
public struct StaffAccount: Codable, Sendable, Equatable {
    /// Login name: lowercase letters, digits, `.`, `-`, `_`; 2 to 64 characters.
    public var name: String
    /// Shown in pages and recorded as the author of entries.
    public var displayName: String
    /// `fr` or `en`.
    public var language: String
    public var disabled: Bool
    public var passwordHash: String
    public var createdAt: String
    public var passwordChangedAt: String

    public init(
        name: String, displayName: String, language: String, disabled: Bool = false, passwordHash: String,
        createdAt: String, passwordChangedAt: String
    ) {
        self.name = name
        self.displayName = displayName
        self.language = language
        self.disabled = disabled
        self.passwordHash = passwordHash
        self.createdAt = createdAt
        self.passwordChangedAt = passwordChangedAt
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
    public var name: String
    public var displayName: String
    public var language: String
    public var disabled: Bool
    public var createdAt: String
    public var passwordChangedAt: String

    public init(_ account: StaffAccount) {
        name = account.name
        displayName = account.displayName
        language = account.language
        disabled = account.disabled
        createdAt = account.createdAt
        passwordChangedAt = account.passwordChangedAt
    }
}
