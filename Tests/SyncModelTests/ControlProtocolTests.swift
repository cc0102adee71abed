import Foundation
import SyncModel
import Testing

/// The typed control protocol: every command survives its wire form, requests written by
/// earlier syncctl versions still read, and bad requests are refused with a reason.
@Suite struct ControlProtocolTests {
    static let commands: [ControlCommand] = [
        .status, .pause, .resume, .syncNow, .held,
        .decideHeld(.approve, rows: nil), .decideHeld(.reject, rows: [3, 4]), .verify,
        .keyRotate(file: "/etc/ehr-sync/new.key"), .keyBackup(replace: false), .keyBackup(replace: true),
        .outbox(all: false), .outbox(all: true), .outboxRetry(seq: 12), .conflicts, .conflictShow(seq: 3),
        .conflictResolve(seq: 3, keep: .local), .conflictResolve(seq: 3, keep: .remote),
        .conflictResolve(seq: 3, keep: .file(#"{"resourceType":"Patient"}"#)),
        .userAdd(name: "amartin", displayName: "Dr A. Martin", language: "en", password: "correct horse"),
        .userAdd(name: "amartin", displayName: nil, language: nil, password: "pw"),
        .userAdd(name: "accueil", displayName: nil, language: "fr", password: "pw", role: .reception),
        .userSetRole(name: "amartin", role: .reception), .userSetRole(name: "accueil", role: .clinician),
        .backupNow, .backupRestore(dir: "/mnt/usb/ehr-sync"), .replicaRebuild,
        .keyRotate(file: "/etc/ehr-sync/new.key", reencrypt: true),
        .userPasswd(name: "amartin", password: "pw2"), .userSetDisabled(name: "amartin", disabled: true),
        .userSetDisabled(name: "amartin", disabled: false), .userList, .userUnlock(name: "amartin"), .auditVerify,
        .auditList(.init()),
        .auditList(.init(patient: "p1", user: "amartin", since: "2026-11-01T00:00:00.000Z", limit: nil)),
    ]

    @Test(arguments: commands)
    func everyCommandSurvivesTheWire(command: ControlCommand) throws {
        let request = ControlRequest(command, actor: "amartin (uid 1000)")
        let line = try JSONEncoder().encode(request)
        let decoded = try JSONDecoder().decode(ControlRequest.self, from: line)
        #expect(decoded == request)
        #expect(ControlCommand.names.contains(command.name))
    }

    @Test func everyNameIsACommand() throws {
        for name in ControlCommand.names {
            let arguments = [
                "seq": "1", "name": "amartin", "keep": "local", "file": "/k", "role": "reception", "dir": "/mnt/usb",
            ]
            #expect(try ControlCommand(name: name, arguments: arguments).name == name)
        }
    }

    /// Lines as syncctl sent them before the protocol had a version.
    @Test(arguments: [
        (#"{"command":"status"}"#, ControlCommand.status, String?.none),
        (##"{"command":"outbox-retry","arguments":{"seq":"#12","actor":"bob"}}"##, .outboxRetry(seq: 12), "bob"),
        (#"{"command":"held-approve","arguments":{"rows":"all"}}"#, .decideHeld(.approve, rows: nil), nil),
        (#"{"command":"held-reject","arguments":{"rows":"3, 4"}}"#, .decideHeld(.reject, rows: [3, 4]), nil),
        (
            #"{"command":"audit-list","arguments":{"limit":"0","since":"2026-11-01"}}"#,
            .auditList(.init(since: "2026-11-01T00:00:00.000Z", limit: nil)), nil
        ),
        (#"{"command":"audit-list"}"#, .auditList(.init(limit: 100)), nil),
    ])
    func earlierRequestsStillRead(line: String, command: ControlCommand, actor: String?) throws {
        let request = try JSONDecoder().decode(ControlRequest.self, from: Data(line.utf8))
        #expect(request.command == command)
        #expect(request.actor == actor)
        #expect(request.version == 1)
    }

    @Test(arguments: [
        (#"{"command":"launch"}"#, "unknown command \"launch\"; known: status, pause"),
        (#"{"command":"outbox-retry","arguments":{"seq":"x"}}"#, "expected an entry number like 12"),
        (#"{"command":"outbox-retry"}"#, "expected an entry number like 12"),
        (#"{"command":"conflict-resolve","arguments":{"seq":"2","keep":"mine"}}"#, "conflict-resolve needs keep=local"),
        (#"{"command":"conflict-resolve","arguments":{"seq":"2","keep":"file"}}"#, "the file is empty"),
        (#"{"command":"held-approve","arguments":{"rows":"3,x"}}"#, "expected `all` or row numbers"),
        (#"{"command":"key-rotate"}"#, "key-rotate needs the new key file"),
        (#"{"command":"user-passwd"}"#, "user-passwd needs name"),
        (
            #"{"command":"user-role","arguments":{"name":"a","role":"admin"}}"#,
            "unknown role \"admin\"; expected clinician or reception"
        ),
        (#"{"command":"user-add","arguments":{"name":"a","role":"doctor"}}"#, "unknown role \"doctor\""),
        (#"{"command":"audit-list","arguments":{"since":"yesterday"}}"#, "since must be a date like 2026-11-01"),
        (#"{"command":"audit-list","arguments":{"limit":"-1"}}"#, "limit must be a number"),
        (#"{"version":2,"command":"status"}"#, "control protocol 1, the request is version 2"),
    ])
    func badRequestsAreRefusedWithAReason(line: String, reason: String) {
        do {
            _ = try JSONDecoder().decode(ControlRequest.self, from: Data(line.utf8))
            Issue.record("accepted \(line)")
        } catch let error as ControlRequestError {
            #expect(error.description.contains(reason), "\(error.description)")
        } catch {
            Issue.record("\(line): not a refusal with a reason: \(error)")
        }
    }

    @Test func refusalsDoNotEchoControlCharacters() throws {
        let line = #"{"command":"sta\u001b[2Jtus"}"#
        #expect(throws: ControlRequestError.self) {
            try JSONDecoder().decode(ControlRequest.self, from: Data(line.utf8))
        }
        do {
            _ = try JSONDecoder().decode(ControlRequest.self, from: Data(line.utf8))
        } catch let error as ControlRequestError {
            #expect(!error.description.unicodeScalars.contains { $0.value == 0x1B })
        }
    }

    /// Answers keep the fields earlier syncctl versions read.
    @Test(arguments: [
        (ControlResponse.done("paused"), #"{"message":"paused","ok":true}"#),
        (.failure("no outbox entry #9"), #"{"error":"no outbox entry #9","ok":false}"#),
        (.recoveryKey("ABCD-EFGH"), #"{"ok":true,"recoveryKey":"ABCD-EFGH"}"#),
        (.held([]), #"{"held":[],"ok":true}"#),
        (.auditVerification(.success(3)), #"{"auditVerified":3,"ok":true}"#),
    ])
    func answersKeepTheirWireForm(response: ControlResponse, json: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(response), as: UTF8.self) == json)
        #expect(try JSONDecoder().decode(ControlResponse.self, from: Data(json.utf8)) == response)
    }
}
