import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// `scripts/install.sh` and `scripts/uninstall.sh` in a throw-away system root: install, verify
/// the unit with systemd, install again (nothing changes), uninstall (the replica, the
/// configuration, the key and the user stay), purge (they go).
///
/// Needs root (useradd --root, chown) and the debug binaries of `swift build`.
@Suite(.serialized, .enabled(if: getuid() == 0, "install.sh creates accounts and chowns the key: run as root"))
struct InstallTests {
    static let repo = TestData.repositoryRoot
    static let binaries = TestData.repositoryRoot + "/.build/debug"

    @Test func installIsVerifiedIdempotentAndUninstallKeepsDataUntilPurge() throws {
        for name in ["ehr-syncd", "syncctl"] {
            try #require(
                FileManager.default.isExecutableFile(atPath: Self.binaries + "/" + name),
                "\(Self.binaries)/\(name) missing: run swift build first")
        }
        let tree = try TemporaryDirectory("ehr-sync-install")
        let root = tree.path
        try Self.makeSystemRoot(root)
        let unit = root + "/etc/systemd/system/ehr-syncd.service"
        let dropIn = root + "/etc/systemd/system/ehr-syncd.service.d/credential.conf"
        let config = root + "/etc/ehr-sync/ehr-sync.toml"
        let key = root + "/etc/ehr-sync/replica.key"
        let credential = root + "/etc/ehr-sync/replica-key.cred"

        // First install.
        let first = try Self.install(root)
        #expect(first.status == 0, "install.sh:\n\(first.output)")
        for name in ["ehr-syncd", "syncctl"] {
            let path = root + "/usr/local/bin/" + name
            #expect(FileManager.default.isExecutableFile(atPath: path), "\(path) not executable")
            #expect(try Self.mode(path) == 0o755, "\(path) mode")
        }
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: unit))
                == Data(contentsOf: URL(fileURLWithPath: Self.repo + "/systemd/ehr-syncd.service")))
        #expect(FileManager.default.fileExists(atPath: root + "/usr/local/share/doc/ehr-sync/README.md"))

        // The account: a system user without login or home, its group and the staff group.
        let user = try #require(try Self.entry(root, "passwd", "ehr-sync"), "no user ehr-sync in the root's passwd")
        let group = try #require(try Self.entry(root, "group", "ehr-sync"), "no group ehr-sync")
        #expect(try Self.entry(root, "group", "ehr-sync-staff") != nil, "no group ehr-sync-staff")
        #expect(try Self.entry(root, "group", "ehr-sync-admin") != nil, "no group ehr-sync-admin")
        #expect(user[3] == group[2], "ehr-sync's primary group is not ehr-sync")
        #expect(user[5] == "/nonexistent" && user[6] == "/usr/sbin/nologin", "user ehr-sync: \(user)")
        #expect(!FileManager.default.fileExists(atPath: root + "/nonexistent"))
        let uid = try #require(UInt32(user[2]))
        #expect(uid < 1000, "ehr-sync is not a system user (uid \(uid))")

        // The key: without a machine to seal a credential for (--root), a plain 0600 file owned
        // by ehr-sync, and a drop-in that swaps the unit's encrypted credential for it.
        if FileManager.default.fileExists(atPath: credential) {
            #expect(try Self.mode(credential) & 0o077 == 0)
        } else {
            let data = try Data(contentsOf: URL(fileURLWithPath: key))
            #expect(KeyEncryptionKey(fileContents: data) != nil, "replica.key is not a usable key")
            #expect(try Self.mode(key) == 0o600)
            #expect(try Self.owner(key) == uid)
            let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let printed = first.output.contains(secret)  // a Bool, so no failure message shows the key
            #expect(!printed, "install.sh printed the key")
            let lines = try String(contentsOfFile: dropIn, encoding: .utf8).split(separator: "\n").map(String.init)
            let reset = try #require(
                lines.firstIndex(of: "LoadCredentialEncrypted="), "drop-in does not reset the credential")
            let plain = try #require(lines.firstIndex(of: "LoadCredential=replica-key:/etc/ehr-sync/replica.key"))
            #expect(reset < plain, "the reset must come before LoadCredential=")
        }

        // The configuration: the documented example, and it parses.
        let configText = try String(contentsOfFile: config, encoding: .utf8)
        #expect(throws: Never.self) { try SyncConfiguration.parse(configText, file: config) }

        // systemd accepts the unit and its drop-in inside the root; ExecStart resolves there.
        let verify = try run("/usr/bin/systemd-analyze", ["verify", "--root=" + root, unit])
        #expect(verify.status == 0, "systemd-analyze verify:\n\(verify.output)")
        let complaints = verify.output.split(separator: "\n").filter { $0.contains("ehr-syncd") }
        #expect(complaints.isEmpty, "systemd-analyze verify:\n\(complaints.joined(separator: "\n"))")

        // Second install: nothing that exists changes, even an operator's edited configuration.
        let edited = configText.replacingOccurrences(
            of: "base_url = \"https://ehr.example/fhir\"", with: "base_url = \"https://ehr.practice.test/fhir\"")
        #expect(edited != configText)
        try edited.write(toFile: config, atomically: true, encoding: .utf8)
        let watched =
            [config, root + "/etc/passwd", root + "/etc/group", root + "/etc/shadow", unit]
            + [key, credential, dropIn].filter { FileManager.default.fileExists(atPath: $0) }
        let before = try watched.map { try Self.snapshot($0) }
        let second = try Self.install(root)
        #expect(second.status == 0, "second install.sh:\n\(second.output)")
        for (path, old) in zip(watched, before) {
            let unchanged = try Self.snapshot(path) == old  // a Bool: the snapshot holds the key's bytes
            #expect(unchanged, "second install changed \(path)")
        }

        // Enabled, as `systemctl enable` would on the target; uninstall must undo that too.
        let wants = root + "/etc/systemd/system/multi-user.target.wants/ehr-syncd.service"
        let enable = try run("/usr/bin/systemctl", ["--root=" + root, "enable", "ehr-syncd.service"])
        #expect(enable.status == 0, "systemctl --root enable:\n\(enable.output)")
        #expect(Self.exists(wants))

        // The replica, as the running service would leave it.
        let state = root + "/var/lib/ehr-sync"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Data("replica".utf8).write(to: URL(fileURLWithPath: state + "/replica.sqlite"))

        // Uninstall, twice: program, unit, drop-ins and docs go; data, config, key and user stay.
        for attempt in 1...2 {
            let result = try run("/bin/bash", [Self.repo + "/scripts/uninstall.sh", "--root", root])
            #expect(result.status == 0, "uninstall.sh (\(attempt)):\n\(result.output)")
        }
        for gone in [
            root + "/usr/local/bin/ehr-syncd", root + "/usr/local/bin/syncctl", unit, dropIn, wants,
            root + "/etc/systemd/system/ehr-syncd.service.d", root + "/usr/local/share/doc/ehr-sync",
        ] {
            #expect(!Self.exists(gone), "uninstall left \(gone)")
        }
        #expect(try String(contentsOfFile: config, encoding: .utf8) == edited)
        #expect(FileManager.default.fileExists(atPath: key) || FileManager.default.fileExists(atPath: credential))
        #expect(FileManager.default.fileExists(atPath: state + "/replica.sqlite"))
        #expect(try Self.entry(root, "passwd", "ehr-sync") != nil)

        // Purge, twice: the replica, the configuration, the key, the user and the groups go.
        for attempt in 1...2 {
            let result = try run("/bin/bash", [Self.repo + "/scripts/uninstall.sh", "--root", root, "--purge"])
            #expect(result.status == 0, "uninstall.sh --purge (\(attempt)):\n\(result.output)")
            if attempt == 1 { #expect(result.output.contains("WARNING")) }
        }
        #expect(!Self.exists(state))
        #expect(!Self.exists(root + "/etc/ehr-sync"))
        #expect(try Self.entry(root, "passwd", "ehr-sync") == nil)
        #expect(try Self.entry(root, "group", "ehr-sync") == nil)
        #expect(try Self.entry(root, "group", "ehr-sync-staff") == nil)
        #expect(try Self.entry(root, "group", "ehr-sync-admin") == nil)
        #expect(try Self.entry(root, "shadow", "ehr-sync") == nil)
    }

    @Test func installRefusesToRunWithoutRoot() throws {
        // A copy anyone can read: the checkout may sit in a folder `nobody` cannot enter.
        let dir = "/tmp/ehr-sync-install-\(UUID().uuidString)"
        try FileManager.default.createDirectory(
            atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for script in ["install.sh", "uninstall.sh"] {
            try FileManager.default.copyItem(atPath: Self.repo + "/scripts/" + script, toPath: dir + "/" + script)
            let result = try run(
                "/usr/bin/setpriv",
                ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", dir + "/" + script, "--root", dir])
            #expect(result.status != 0, "\(script) ran without root")
            #expect(result.output.contains("must run as root"), "\(script): \(result.output)")
        }
    }

    @Test(
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "apt-get install shellcheck"))
    func scriptsAreShellcheckClean() throws {
        let result = try run(
            "/usr/bin/shellcheck", [Self.repo + "/scripts/install.sh", Self.repo + "/scripts/uninstall.sh"])
        #expect(result.status == 0, "shellcheck:\n\(result.output)")
    }

    // MARK: Helpers

    static func install(_ root: String) throws -> (status: Int32, output: String) {
        try run(
            "/bin/bash",
            [repo + "/scripts/install.sh", "--root", root, "--no-build", "--bin-dir", binaries])
    }

    /// A root `useradd --root` and `systemd-analyze verify --root` accept: the host's account
    /// lists without any ehr-sync entry (shadow files with locked entries, never the host's
    /// hashes), its login.defs, and its systemd units (sysinit.target & co. for verify).
    static func makeSystemRoot(_ root: String) throws {
        let etc = root + "/etc"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        func names(_ file: String) throws -> [String] {
            try String(contentsOfFile: "/etc/" + file, encoding: .utf8).split(separator: "\n")
                .filter { !$0.hasPrefix("ehr-sync") }.map(String.init)
        }
        let passwd = try names("passwd")
        let group = try names("group")
        try (passwd.joined(separator: "\n") + "\n").write(toFile: etc + "/passwd", atomically: true, encoding: .utf8)
        try (group.joined(separator: "\n") + "\n").write(toFile: etc + "/group", atomically: true, encoding: .utf8)
        let shadow = passwd.map { "\($0.prefix { $0 != ":" }):*:19000:0:99999:7:::" }
        let gshadow = group.map { "\($0.prefix { $0 != ":" }):*::" }
        try (shadow.joined(separator: "\n") + "\n").write(toFile: etc + "/shadow", atomically: true, encoding: .utf8)
        try (gshadow.joined(separator: "\n") + "\n").write(toFile: etc + "/gshadow", atomically: true, encoding: .utf8)
        for file in ["shadow", "gshadow"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: etc + "/" + file)
        }
        try FileManager.default.copyItem(atPath: "/etc/login.defs", toPath: etc + "/login.defs")
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/systemd", withIntermediateDirectories: true)
        let copy = try run("/bin/cp", ["-a", "/usr/lib/systemd/system", root + "/usr/lib/systemd/"])
        try #require(copy.status == 0, "copying the host's systemd units: \(copy.output)")
    }

    /// The fields of NAME's line in the root's etc/FILE, or nil.
    static func entry(_ root: String, _ file: String, _ name: String) throws -> [String]? {
        try String(contentsOfFile: root + "/etc/" + file, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
            .first { $0.first == name }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        try #require(lstat(path, &info) == 0, "\(path): \(String(cString: strerror(errno)))")
        return info.st_mode & 0o7777
    }

    static func owner(_ path: String) throws -> uid_t {
        var info = stat()
        try #require(lstat(path, &info) == 0, "\(path): \(String(cString: strerror(errno)))")
        return info.st_uid
    }

    /// Bytes, inode, mode, owner and modification time: any rewrite shows.
    static func snapshot(_ path: String) throws -> String {
        var info = stat()
        try #require(lstat(path, &info) == 0, "\(path): \(String(cString: strerror(errno)))")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return "\(data.base64EncodedString()) ino=\(info.st_ino) mode=\(info.st_mode) uid=\(info.st_uid) "
            + "mtime=\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
}
