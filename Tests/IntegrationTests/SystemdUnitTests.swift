import Foundation
import SyncTestSupport
import Testing

@Suite struct SystemdUnitTests {
    let unit = TestData.repositoryRoot + "/systemd/ehr-syncd.service"

    @Test func hardeningExposureIsAtMostOnePointFive() throws {
        let (_, output) = try run("/usr/bin/systemd-analyze", ["security", "--offline=yes", unit])
        let line = try #require(output.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(score <= 1.5, "systemd-analyze security: \(line)")
    }

    @Test func unitDeclaresTheServiceContract() throws {
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        for directive in [
            "Type=notify", "WatchdogSec=", "Restart=on-failure", "User=ehr-sync", "StateDirectory=ehr-sync",
            "RuntimeDirectory=ehr-sync", "ConfigurationDirectory=ehr-sync", "UMask=0077",
            "LoadCredentialEncrypted=replica-key",
            // No core dump (it would hold the data key); bounded files, tasks and memory.
            "LimitCORE=0", "LimitNOFILE=", "TasksMax=", "MemoryMax=",
        ] {
            #expect(text.contains(directive), "missing \(directive)")
        }
    }
}
