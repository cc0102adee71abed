import Foundation
import SyncModel
import SyncTestSupport
import Testing

@Suite struct SyncConfigurationTests {
    let minimal = """
        [ehr]
        base_url = "https://ehr.example/fhir"
        [replica]
        state_dir = "/var/lib/ehr-sync"
        [key]
        file = "/etc/ehr-sync/replica.key"   # 32 random bytes, raw or base64 on one line
        [control]
        socket = "/run/ehr-sync/control.sock"
        """

    @Test func minimalConfigurationGetsDefaults() throws {
        let config = try SyncConfiguration.parse(minimal, file: "ehr-sync.toml")
        #expect(config.ehr.baseURL.absoluteString == "https://ehr.example/fhir")
        #expect(config.stateDirectory == "/var/lib/ehr-sync")
        #expect(config.keyFile == "/etc/ehr-sync/replica.key")
        #expect(config.controlSocket == "/run/ehr-sync/control.sock")
        #expect(config.sync.pollInterval == 60)
        #expect(config.sync.resourceTypes == nil)
        #expect(config.sync.bulkExport == .auto)
        #expect(config.ehr.rateControl == .adaptive)
        #expect(config.ehr.minRequestsPerSecond == 0.2)
        #expect(config.ehr.requestsPerSecond == 20)
    }

    @Test func theShippedExampleIsValid() throws {
        let config = try SyncConfiguration.load(path: TestData.repositoryRoot + "/config/ehr-sync.toml")
        #expect(config.sync.pageSize == 500)
        #expect(config.sync.massDeleteCount == 500)
    }

    @Test func keyMayBeOmittedUnderSystemd() throws {
        let text = minimal.replacingOccurrences(
            of: "[key]\nfile = \"/etc/ehr-sync/replica.key\"   # 32 random bytes, raw or base64 on one line\n", with: ""
        )
        #expect(try SyncConfiguration.parse(text, file: "f").keyFile == nil)
    }

    @Test(arguments: [
        (
            "[ehr]\nbase_url = 42\n[replica]\nstate_dir = \"/x\"",
            "f.toml: [ehr] base_url: expected a string, got an integer"
        ),
        ("[replica]\nstate_dir = \"/x\"", "f.toml: [ehr]: missing section [ehr]"),
        (
            "[ehr]\nbase_url = \"ftp://x\"\n[replica]\nstate_dir = \"/x\"",
            "f.toml: [ehr] base_url: expected an http(s) URL such as \"https://ehr.example/fhir\", got \"ftp://x\""
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\npoll_interval = \"60\"",
            "f.toml: [sync] poll_interval: expected a number, got a string"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\npol_interval = 60",
            "f.toml: unknown key pol_interval in [sync]; known: bulk_export, exclude_types, export_origins, group_id, mass_delete_count, mass_delete_floor, mass_delete_percent, overlap, page_size, patient_round, poll_interval, resource_types, strategy, sweep_interval"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\npage_size = 0",
            "f.toml: [sync] page_size: expected an integer from 1 to 10000, got 0"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\nresource_types = [\"Patient\", 3]",
            "f.toml: [sync] resource_types: expected an array of strings, found an integer"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\nbulk_export = \"yes\"",
            "f.toml: [sync] bulk_export: expected one of \"auto\", \"system\", \"group\", \"off\", got \"yes\""
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\nrate_control = \"aimd\"\n[replica]\nstate_dir = \"/x\"",
            "f.toml: [ehr] rate_control: must be \"adaptive\" or \"fixed\", not \"aimd\""
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\nrequests_per_second = 5\nmin_requests_per_second = 10\n[replica]\nstate_dir = \"/x\"",
            "f.toml: [ehr] min_requests_per_second: must not exceed requests_per_second (5.0)"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[sync]\ngroup_id = \"Group/practice\"",
            "f.toml: [sync] group_id: not a FHIR id (the Group's id, without Group/)"
        ),
        (
            "[ehr]\nbase_url = \"https://x\"\n[replica]\nstate_dir = \"/x\"\n[key]\nkey = \"c2VjcmV0\"",
            "f.toml: unknown key key in [key]; known: file"
        ),
    ])
    func errorsNameTheFileTheKeyAndWhatIsExpected(text: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try SyncConfiguration.parse(text, file: "f.toml") }
        #expect(error?.description == message)
    }

    /// Table names that toml++ asserted on instead of reporting (found by `make fuzz`): a clear
    /// error, never a crash; multi-line strings are not mistaken for headers.
    @Test(arguments: [
        "[ ~ ]\nx = 1", "[ehr]\nbase_url = \"https://e/fhir\"\n[[é]]", "\t[~hr]\nbase_url = \"x\"",
        "\u{FEFF}[\u{FFFD}\n", "[\u{064B}\n", "[ehr]\r\nbase_url = \"https://e/fhir\"\r\n[ ~ ]\r\n",
    ])
    func aBadTableNameIsAnErrorNotACrash(text: String) {
        let error = #expect(throws: ConfigError.self) { try SyncConfiguration.parse(text, file: "f.toml") }
        #expect(
            error?.description.contains("a table name must start with a letter") == true, "\(String(describing: error))"
        )
    }

    /// Brackets toml++ asserted on, in release builds too (found by `make fuzz`): refused first.
    @Test(arguments: [
        ("[ehr]\nbase_url = [[[[[}\n", "line 2: a '}' that closes nothing"),
        ("x = [1, 2\n", "line 1: a '[' that is never closed"),
        ("x = { a = 1 ]\n", "line 1: a ']' that closes nothing"),
    ])
    func unbalancedBracketsAreAnErrorNotACrash(text: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try SyncConfiguration.parse(text, file: "f.toml") }
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
    }

    @Test func bracketsInStringsAndCommentsAreNotCounted() throws {
        let text = """
            # a comment with ] and {
            [ehr]
            base_url = "https://e/fhir?x=[}"
            [replica]
            state_dir = '/var/lib/[ehr-sync'
            [key]
            file = "/etc/k\\\\ey]"
            """
        _ = try SyncConfiguration.parse(text, file: "f.toml")
    }

    @Test func syntaxErrorsGiveThePosition() {
        let error = #expect(throws: ConfigError.self) { try SyncConfiguration.parse("[ehr\nbase_url=", file: "f.toml") }
        #expect(error?.description.hasPrefix("f.toml: not valid TOML at line 1") == true)
    }
}
