import Foundation
import SyncModel
import Testing

/// Who may run which `syncctl` command: the peer as the kernel names it, never what it sends.
@Suite struct ControlRoleTests {
    let policy = ControlAccessPolicy(staffGroup: "ehr-sync-staff", adminGroup: "ehr-sync-admin", serviceUID: 998)

    func peer(_ uid: UInt32, _ user: String, _ groups: Set<String>) -> ControlPeer {
        ControlPeer(uid: uid, gid: 1000, user: user, groups: groups)
    }

    @Test func rolesComeFromTheUserAndItsGroups() {
        #expect(policy.role(of: peer(0, "root", [])) == .admin)
        #expect(policy.role(of: peer(998, "ehr-sync", [])) == .admin, "the service's own user")
        #expect(policy.role(of: peer(1001, "it", ["ehr-sync-admin"])) == .admin)
        #expect(policy.role(of: peer(1002, "amartin", ["ehr-sync-staff", "users"])) == .staff)
        #expect(policy.role(of: peer(1003, "guest", ["users"])) == nil)
    }

    static let staffCommands: [ControlCommand] = [
        .status, .syncNow, .outbox(all: false), .outbox(all: true), .conflicts,
    ]
    static let adminCommands: [ControlCommand] = [
        .pause, .resume, .held, .decideHeld(.approve, rows: nil), .decideHeld(.reject, rows: [1]), .verify,
        .keyRotate(file: "/k"), .keyBackup(replace: true), .outboxRetry(seq: 1), .conflictShow(seq: 1),
        .conflictResolve(seq: 1, keep: .file("{}")),
        .userAdd(name: "x", displayName: nil, language: nil, password: "p"),
        .userPasswd(name: "drb", password: "p"), .userSetDisabled(name: "drb", disabled: true), .userList,
        .auditVerify, .auditList(ControlCommand.AuditQuery()),
    ]

    @Test func staffRunTheDailyCommandsAndNothingElse() {
        let staff = peer(1002, "amartin", ["ehr-sync-staff"])
        for command in Self.staffCommands { #expect(policy.refusal(of: command, by: staff) == nil, "\(command.name)") }
        for command in Self.adminCommands {
            let refusal = policy.refusal(of: command, by: staff)
            #expect(refusal?.contains("needs an administrator") == true, "\(command.name)")
        }
    }

    @Test func staffChangeTheirOwnPasswordOnly() {
        let staff = peer(1002, "amartin", ["ehr-sync-staff"])
        #expect(policy.refusal(of: .userPasswd(name: "amartin", password: "p"), by: staff) == nil)
        #expect(policy.refusal(of: .userPasswd(name: "drb", password: "p"), by: staff) != nil)
    }

    @Test func adminsRunEverything() {
        for admin in [peer(0, "root", []), peer(1001, "it", ["ehr-sync-admin"]), peer(998, "ehr-sync", [])] {
            for command in Self.staffCommands + Self.adminCommands {
                #expect(policy.refusal(of: command, by: admin) == nil, "\(admin.user) \(command.name)")
            }
        }
    }

    @Test func strangersRunNothing() {
        let stranger = peer(1003, "guest", ["users"])
        for command in Self.staffCommands + Self.adminCommands {
            #expect(policy.refusal(of: command, by: stranger)?.contains("not allowed") == true)
        }
    }

    @Test func groupsAreConfigurable() throws {
        let config = try SyncConfiguration.parse(
            """
            [ehr]
            base_url = "https://ehr.example/fhir"
            [replica]
            state_dir = "/var/lib/ehr-sync"
            [control]
            staff_group = "cabinet"
            admin_group = "informatique"
            """, file: "t.toml")
        #expect(config.controlStaffGroup == "cabinet" && config.controlAdminGroup == "informatique")
        #expect(throws: ConfigError.self) {
            try SyncConfiguration.parse(
                """
                [ehr]
                base_url = "https://ehr.example/fhir"
                [replica]
                state_dir = "/var/lib/ehr-sync"
                [control]
                admin_group = "a b"
                """, file: "t.toml")
        }
    }
}

/// Which patients a returned record exposes.
@Suite struct PatientAttributionTests {
    @Test func aRecordExposesEveryPatientItReferences() {
        let observation = Data(
            #"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/d"}],"focus":[{"reference":"Patient/p2"},{"reference":"Patient/p1"}]}"#
                .utf8)
        #expect(Set(PatientAttribution.patients(in: observation, type: "Observation", id: "o1")) == ["p1", "p2"])
        #expect(PatientAttribution.patients(in: Data("{}".utf8), type: "Patient", id: "p9") == ["p9"])
        let practitioner = Data(#"{"resourceType":"Practitioner","id":"d"}"#.utf8)
        #expect(PatientAttribution.patients(in: practitioner, type: "Practitioner", id: "d").isEmpty)
        #expect(PatientAttribution.patients(in: Data("not json".utf8), type: "Observation", id: "x").isEmpty)
    }

    @Test func aPageExposesTheUnionOfItsRecords() {
        let records: [(type: String, id: String, json: Data)] = [
            ("Patient", "p1", Data("{}".utf8)),
            ("Condition", "c1", Data(#"{"subject":{"reference":"Patient/p2"}}"#.utf8)),
            ("Condition", "c2", Data(#"{"subject":{"reference":"Patient/p1"}}"#.utf8)),
        ]
        #expect(PatientAttribution.patients(in: records) == ["p1", "p2"])
    }
}
