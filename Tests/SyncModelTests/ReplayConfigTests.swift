import Foundation
import SyncModel
import Testing

/// `[replay]` and `[local_api]` in the configuration file.
@Suite struct ReplayConfigTests {
    static let base = """
        [ehr]
        base_url = "https://ehr.example/fhir"
        [replica]
        state_dir = "/var/lib/ehr-sync"

        """

    static func parse(_ extra: String) throws(ConfigError) -> SyncConfiguration {
        try SyncConfiguration.parse(base + extra, file: "f.toml")
    }

    @Test func defaultsWithoutTheSections() throws {
        let config = try Self.parse("")
        #expect(config.replay.provenance)
        #expect(config.replay.concurrency == 2)
        #expect(config.replay.startJitter == 300)
        #expect(config.replay.policy == .merge)
        #expect(config.replay.policies == ["AllergyIntolerance": .manual, "MedicationRequest": .manual])
        #expect(config.localAPI == nil)
    }

    @Test func replayIsParsed() throws {
        let config = try Self.parse(
            """
            [replay]
            provenance = false
            concurrency = 8
            start_jitter = 2.5
            policy = "remote-wins"
            [replay.policies]
            Observation = "local-wins"
            AllergyIntolerance = "manual"
            Condition = "merge"
            """)
        #expect(!config.replay.provenance)
        #expect(config.replay.concurrency == 8)
        #expect(config.replay.startJitter == 2.5)
        #expect(config.replay.policy == .remoteWins)
        #expect(config.replay.policies["Observation"] == .localWins)
        #expect(config.replay.policies["AllergyIntolerance"] == .manual)
        #expect(config.replay.policies["Condition"] == .merge)
    }

    @Test(arguments: ConflictPolicy.allCases)
    func everyPolicyNameIsAccepted(policy: ConflictPolicy) throws {
        let config = try Self.parse(
            "[replay]\npolicy = \"\(policy.rawValue)\"\n[replay.policies]\nPatient = \"\(policy.rawValue)\"")
        #expect(config.replay.policy == policy)
        #expect(config.replay.policies["Patient"] == policy)
    }

    @Test func integerJitterIsANumber() throws {
        #expect(try Self.parse("[replay]\nstart_jitter = 0").replay.startJitter == 0)
        #expect(try Self.parse("[replay]\nstart_jitter = 3600").replay.startJitter == 3600)
    }

    static let policyNames = #""merge", "remote-wins", "local-wins", "manual""#

    @Test(arguments: [
        (
            "[replay]\npolicy = \"newest\"",
            "f.toml: [replay] policy: expected one of \(ReplayConfigTests.policyNames), got \"newest\""
        ),
        (
            "[replay]\npolicy = \"Remote-Wins\"",
            "f.toml: [replay] policy: expected one of \(ReplayConfigTests.policyNames), got \"Remote-Wins\""
        ),
        ("[replay]\npolicy = 1", "f.toml: [replay] policy: expected a string, got an integer"),
        (
            "[replay.policies]\nObservation = \"last-wins\"",
            "f.toml: [replay.policies] Observation: expected one of \(ReplayConfigTests.policyNames), got \"last-wins\""
        ),
        (
            "[replay.policies]\nobservation = \"manual\"",
            "f.toml: [replay.policies] observation: \"observation\" is not a FHIR resource type name"
        ),
        (
            "[replay.policies]\n\"Medication Request\" = \"manual\"",
            "f.toml: [replay.policies] Medication Request: \"Medication Request\" is not a FHIR resource type name"
        ),
        (
            "[replay]\npolicies = \"manual\"",
            "f.toml: [replay] policies: expected a table [policies], got a string"
        ),
        ("[replay]\nconcurrency = 0", "f.toml: [replay] concurrency: expected an integer from 1 to 64, got 0"),
        ("[replay]\nconcurrency = 65", "f.toml: [replay] concurrency: expected an integer from 1 to 64, got 65"),
        (
            "[replay]\nstart_jitter = -1",
            "f.toml: [replay] start_jitter: expected a number from 0.0 to 3600.0, got -1.0"
        ),
        ("[replay]\nprovenance = \"yes\"", "f.toml: [replay] provenance: expected true or false, got a string"),
        (
            "[replay]\nretries = 3",
            "f.toml: unknown key retries in [replay]; known: concurrency, policies, policy, provenance, start_jitter"
        ),
        ("[local_api]\nlisten = \"127.0.0.1:8090\"", "f.toml: [local_api] token_file: missing (expected a string)"),
        ("[local_api]\ntoken_file = \"\"", "f.toml: [local_api] token_file: must not be empty"),
    ])
    func errorsNameTheKey(extra: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try Self.parse(extra) }
        #expect(error?.description == message)
    }

    @Test func localAPIIsParsed() throws {
        let config = try Self.parse("[local_api]\ntoken_file = \"/etc/ehr-sync/local-api.tokens\"")
        #expect(config.localAPI?.tokenFile == "/etc/ehr-sync/local-api.tokens")
        #expect(config.localAPI?.listen == "127.0.0.1:8090")
    }

    @Test(arguments: ["127.0.0.1:9000", "[::1]:9000", "localhost:9000", "127.0.0.2:8090"])
    func loopbackListenersAreAccepted(listen: String) throws {
        let config = try Self.parse("[local_api]\ntoken_file = \"/t\"\nlisten = \"\(listen)\"")
        #expect(config.localAPI?.listen == listen)
    }

    @Test(arguments: ["0.0.0.0:8090", "192.168.1.10:8090", "[::]:8090", "ehr.example:8090", "127.0.0.1", ":8090"])
    func plainHTTPBeyondLoopbackOrMalformedListenersAreRefused(listen: String) {
        let error = #expect(throws: ConfigError.self) {
            try Self.parse("[local_api]\ntoken_file = \"/t\"\nlisten = \"\(listen)\"")
        }
        #expect(error?.key == "[local_api] listen")
        #expect(error?.file == "f.toml")
    }

    @Test func unknownLocalAPIKeysAreRefused() {
        let error = #expect(throws: ConfigError.self) {
            try Self.parse("[local_api]\ntoken_file = \"/etc/t\"\nport = 8090")
        }
        #expect(error?.description.hasPrefix("f.toml: unknown key port in [local_api]; known: ") == true)
        #expect(error?.description.contains("listen, ") == true)
        #expect(error?.description.contains("token_file") == true)
    }

    @Test(arguments: ["0.0.0.0:8090", "192.168.1.10:8090", "[::]:8090"])
    func beyondLoopbackOnlyWithHTTPS(listen: String) throws {
        let error = #expect(throws: ConfigError.self) {
            try Self.parse("[local_api]\ntoken_file = \"/t\"\nlisten = \"\(listen)\"")
        }
        #expect(error?.key == "[local_api] listen")
        #expect(error?.message.contains(listen) == true)
        let config = try Self.parse("[local_api]\ntoken_file = \"/t\"\nlisten = \"\(listen)\"\ntls_self_signed = true")
        #expect(config.localAPI?.listen == listen)
    }

    @Test(arguments: ["0.0.0.0:8090", "127.0.0.1", "ehr.example:8090", "127.0.0.1:0"])
    func localAPIListenErrorsDoNotTalkAboutMetrics(listen: String) {
        let error = #expect(throws: ConfigError.self) {
            try Self.parse("[local_api]\ntoken_file = \"/t\"\nlisten = \"\(listen)\"")
        }
        #expect(error?.key == "[local_api] listen")
        #expect(error?.message.contains("metrics") == false)
    }
}
