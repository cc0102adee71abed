import Foundation
import SyncModel
import SyncTestSupport
import Testing

@Suite struct KeySourceTests {
    let dir: TemporaryDirectory

    init() throws { dir = try TemporaryDirectory() }

    func writeKey(_ contents: Data, mode: Int) throws -> String {
        let path = dir.file("replica.key")
        try contents.write(to: URL(fileURLWithPath: path))
        chmod(path, mode_t(mode))
        return path
    }

    @Test func acceptsRawAndBase64KeysWithStrictModes() throws {
        let raw = Data((0..<32).map { UInt8($0) })
        for mode in [0o600, 0o400] {
            let path = try writeKey(raw, mode: mode)
            _ = try KeySource.file(path: path).load()
            try FileManager.default.removeItem(atPath: path)
        }
        let path = try writeKey(Data((raw.base64EncodedString() + "\n").utf8), mode: 0o600)
        _ = try KeySource.file(path: path).load()
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o700, 0o666])
    func refusesLoosePermissionsWithAFix(mode: Int) throws {
        let path = try writeKey(Data(repeating: 7, count: 32), mode: mode)
        let error = #expect(throws: KeyError.self) { try KeySource.file(path: path).load() }
        #expect(error == .loosePermissions(path: path, mode: UInt32(mode)))
        #expect(error?.description.contains("chmod 600 \(path)") == true)
    }

    @Test func refusesMalformedKeys() throws {
        let path = try writeKey(Data("not a key\n".utf8), mode: 0o600)
        #expect(throws: KeyError.malformed(source: "key file \(path)")) { try KeySource.file(path: path).load() }
    }

    @Test func refusesSymlinks() throws {
        let target = try writeKey(Data(repeating: 1, count: 32), mode: 0o600)
        let link = dir.file("link.key")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: KeyError.notARegularFile(path: link)) { try KeySource.file(path: link).load() }
    }

    @Test func resolvesTheSystemdCredentialWhenNoFileIsConfigured() throws {
        let source = try KeySource.resolve(configuredFile: nil, environment: ["CREDENTIALS_DIRECTORY": "/run/creds/x"])
        #expect(source == .credential(path: "/run/creds/x/replica-key"))
        #expect(throws: KeyError.noSource) { try KeySource.resolve(configuredFile: nil, environment: [:]) }
        #expect(
            try KeySource.resolve(configuredFile: "/k", environment: ["CREDENTIALS_DIRECTORY": "/c"])
                == .file(path: "/k"))
    }

    @Test func generatedKeysRoundTripThroughTheFileFormat() throws {
        let key = KeyEncryptionKey.generate()
        let path = try writeKey(Data(key.base64FileContents.utf8), mode: 0o600)
        let loaded = try KeySource.file(path: path).load()
        #expect(loaded.base64FileContents == key.base64FileContents)
    }
}
