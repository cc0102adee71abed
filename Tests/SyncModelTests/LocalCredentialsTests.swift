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

    @Test func moreThanThreeFieldsIsRefused() {
        let error = #expect(throws: KeyError.self) {
            try LocalCredentials(text: "dr martin \(Self.aliceToken) read", file: "tokens")
        }
        #expect(
            error
                == .unreadable(source: "file tokens", reason: "line 1: expected `author token [read|write|read,write]`")
        )
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

/// Token scopes: a third field `read`, `write` or `read,write`; none keeps read and write.
@Suite struct TokenScopeTests {
    static let reader = "reader-0123456789abcdefghijkl"
    static let writer = "writer-0123456789abcdefghijkl"
    static let both = "both-0123456789abcdefghijklmn"
    static let old = "old-0123456789abcdefghijklmno"

    @Test func scopesAreRead() throws {
        let credentials = try LocalCredentials(
            text:
                "lab \(Self.reader) read\nscanner \(Self.writer) write\nemr \(Self.both) write,read\nlegacy \(Self.old)\n",
            file: "t")
        #expect(credentials.grant(forAuthorization: "Bearer \(Self.reader)")?.scope == .read)
        #expect(credentials.grant(forAuthorization: "Bearer \(Self.writer)")?.scope == .write)
        #expect(credentials.grant(forAuthorization: "Bearer \(Self.both)")?.scope == .all)
        #expect(credentials.grant(forAuthorization: "Bearer \(Self.old)")?.scope == .all)
        #expect(credentials.grant(forAuthorization: "Bearer \(Self.reader)")?.author == "lab")
    }

    @Test(arguments: ["admin", "read,", "READ", "read;write", "read,delete"])
    func unknownScopesAreRefused(scope: String) {
        #expect(throws: KeyError.self) { try LocalCredentials(text: "lab \(Self.reader) \(scope)\n", file: "t") }
    }
}

/// A burst of local deletions is held for an administrator.
@Suite struct LocalDeleteGuardTests {
    @Test func deletionsBeyondTheThresholdWithinTheWindowAreHeld() {
        var deletes = LocalDeleteGuard(threshold: 3, window: 60)
        var held: [Bool] = []
        for now in [0.0, 1, 2, 3, 4, 200] { held.append(deletes.shouldHold(now: now)) }
        // Once the window has passed, deleting goes on as usual.
        #expect(held == [false, false, false, true, true, false])
    }

    @Test func zeroTurnsTheGuardOff() {
        var deletes = LocalDeleteGuard(threshold: 0, window: 60)
        var held = 0
        for n in 0..<100 where deletes.shouldHold(now: Double(n)) { held += 1 }
        #expect(held == 0)
    }
}

/// Outbound: no clear-text EHR off this machine, export files from allowed origins only.
@Suite struct OutboundConfigTests {
    func parse(_ ehr: String, sync: String = "") throws -> SyncConfiguration {
        try SyncConfiguration.parse(
            """
            [ehr]
            \(ehr)
            [sync]
            \(sync)
            [replica]
            state_dir = "/var/lib/ehr-sync"
            """, file: "t.toml")
    }

    @Test func httpOffLoopbackIsRefusedUnlessAllowed() throws {
        #expect(throws: ConfigError.self) { try parse(#"base_url = "http://ehr.example/fhir""#) }
        #expect(throws: ConfigError.self) { try parse(#"base_url = "http://10.0.0.4:8080/fhir""#) }
        _ = try parse(#"base_url = "http://127.0.0.1:8080/fhir""#)
        _ = try parse(#"base_url = "http://localhost/fhir""#)
        _ = try parse(#"base_url = "https://ehr.example/fhir""#)
        _ = try parse("base_url = \"http://ehr.example/fhir\"\nallow_insecure_http = true")
    }

    @Test func exportOriginsAreOrigins() throws {
        let config = try parse(
            #"base_url = "https://ehr.example/fhir""#, sync: #"export_origins = ["https://files.ehr.example"]"#)
        #expect(config.sync.exportOrigins == ["https://files.ehr.example"])
        #expect(throws: ConfigError.self) {
            try parse(#"base_url = "https://ehr.example/fhir""#, sync: #"export_origins = ["files.ehr.example"]"#)
        }
    }

    @Test func staffSeeNoServerText() {
        #expect(
            OperationOutcomeText.withoutServerText("HTTP 422: error invalid: Patient Durand born 1950 (Patient.name)")
                == "HTTP 422: error invalid (details: ask an administrator)")
        #expect(OperationOutcomeText.withoutServerText("waiting for #3") == "waiting for #3")
    }
}
