import ArgumentParser
import Foundation
import SyncModel

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Manage the replica's key-encryption key.",
        subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new random key file (32 bytes, base64, mode 0600).",
            discussion: """
                The file must not exist. Keep a copy somewhere safe: without the key the replica \
                cannot be read. Under systemd, prefer `systemd-creds encrypt` (see the README).
                """)

        @Argument(help: "Path of the key file to create.")
        var file: String

        func run() throws {
            let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                FileHandle.standardError.write(Data("syncctl: cannot create \(file): \(reason)\n".utf8))
                throw ExitCode(1)
            }
            fchmod(fd, 0o600)
            let data = Data(KeyEncryptionKey.generate().base64FileContents.utf8)
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd)
            close(fd)
            guard written == data.count, synced == 0 else {
                unlink(file)
                FileHandle.standardError.write(Data("syncctl: cannot write \(file)\n".utf8))
                throw ExitCode(1)
            }
            print("wrote a new replica key to \(file) (mode 0600)")
        }
    }
}
