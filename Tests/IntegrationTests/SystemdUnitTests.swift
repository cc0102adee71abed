import Foundation
import SyncTestSupport
import Testing

func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

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
        ] {
            #expect(text.contains(directive), "missing \(directive)")
        }
    }
}
