import Foundation
import SyncModel
import SyncServer
import SyncTestSupport
import Testing

/// The local API's bearer credentials file.
@Suite struct LocalCredentialsTests {
    static let aliceToken = "alice-0123456789abcdefghijkl"
    static let bobToken = "bob-9876543210zyxwvutsrqpon"
    static let bareToken = "bare-00000000000000000000000"

    static let file = [
        "# ehr-sync local API credentials",
        "alice \(aliceToken)",
        "",
        "  # indented comment",
        "bob\t\(bobToken)   ",
        "\(bareToken)",
    ].joined(separator: "\n")

    func credentials() throws -> LocalCredentials {
        try LocalCredentials(text: Self.file, file: "/etc/ehr-sync/local-api.tokens")
    }

    @Test func eachTokenNamesItsAuthor() throws {
        let credentials = try credentials()
        #expect(credentials.author(forAuthorization: "Bearer \(Self.aliceToken)") == "alice")
        #expect(credentials.author(forAuthorization: "Bearer \(Self.bobToken)") == "bob")
        #expect(credentials.author(forAuthorization: "Bearer \(Self.bareToken)") == "local-api")
    }

    @Test(
        arguments: [
            nil,
            "",
            "Bearer",
            "Bearer ",
            "Bearer x",
            "Bearer \(LocalCredentialsTests.aliceToken.dropLast())",
            "Bearer \(LocalCredentialsTests.aliceToken)x",
            "Bearer x\(LocalCredentialsTests.aliceToken)",
            "Bearer \(LocalCredentialsTests.aliceToken.uppercased())",
            "Basic \(LocalCredentialsTests.aliceToken)",
            "Token \(LocalCredentialsTests.aliceToken)",
            "Bearer:\(LocalCredentialsTests.aliceToken)",
            LocalCredentialsTests.aliceToken,
            "Bearer alice \(LocalCredentialsTests.aliceToken)",
            "Bearer \(LocalCredentialsTests.aliceToken) \(LocalCredentialsTests.bobToken)",
            "Bearer # ehr-sync local API credentials",
        ] as [String?])
    func anythingButTheExactTokenIsRefused(header: String?) throws {
        #expect(try credentials().author(forAuthorization: header) == nil)
    }

    @Test func theSchemeIsCaseInsensitive() throws {
        // RFC 9110: the authentication scheme is case-insensitive; the token is not.
        #expect(try credentials().author(forAuthorization: "bearer \(Self.aliceToken)") == "alice")
        #expect(try credentials().author(forAuthorization: "BEARER \(Self.aliceToken)") == "alice")
    }

    @Test func shortTokensAreRefusedWithTheLineNumberAndWithoutTheToken() {
        let short = "abcdefghij0123456789xyz"  // 23 characters
        #expect(short.count == LocalCredentials.minimumTokenLength - 1)
        let error = #expect(throws: KeyError.self) {
            try LocalCredentials(text: "# c\nalice \(Self.aliceToken)\nbob \(short)\n", file: "tokens")
        }
        #expect(
            error
                == .unreadable(
                    source: "file tokens", reason: "line 3: tokens must be at least 24 characters"))
        #expect(error?.description.contains(short) == false)
        // 24 characters are enough.
        #expect(throws: Never.self) { try LocalCredentials(text: "bob \(short)z", file: "tokens") }
    }

    @Test func moreThanTwoFieldsIsRefused() {
        let error = #expect(throws: KeyError.self) {
            try LocalCredentials(text: "dr martin \(Self.aliceToken)", file: "tokens")
        }
        #expect(error == .unreadable(source: "file tokens", reason: "line 1: expected `author token`"))
        #expect(error?.description.contains(Self.aliceToken) == false)
    }

    @Test(arguments: ["", "\n\n", "# only a comment\n   \n#another"])
    func aFileWithoutCredentialsIsRefused(text: String) {
        let error = #expect(throws: KeyError.self) { try LocalCredentials(text: text, file: "tokens") }
        #expect(error == .unreadable(source: "file tokens", reason: "no credentials in it"))
    }

    @Test func loadReadsAPrivateFileAndRefusesALooseOne() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("tokens")
        try Data(Self.file.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let loaded = try LocalCredentials.load(path: path)
        #expect(loaded.author(forAuthorization: "Bearer \(Self.bobToken)") == "bob")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: KeyError.self) { try LocalCredentials.load(path: path) }
    }
}
