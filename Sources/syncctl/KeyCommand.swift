import ArgumentParser
import Foundation
import SyncModel

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Manage the replica's key-encryption key.",
        subcommands: [Generate.self, Rotate.self, Backup.self, Recover.self])

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a printed recovery key (read from standard input) into a key file (mode 0600).",
            discussion: """
                Use when the key file is lost: point [key] file at the new file and start the service; then `syncctl key rotate` to a fresh key and make a new backup.
                """)
        @Argument(help: "Path of the key file to create.") var file: String

        func run() throws {
            let text = readLine(strippingNewline: true) ?? ""
            guard let recovery = RecoveryKey(text: text) else {
                FileHandle.standardError.write(
                    Data("syncctl: that is not a recovery key (13 groups of 4 letters and digits)\n".utf8))
                throw ExitCode(1)
            }
            try Generate.writeKeyFile(file, contents: recovery.keyEncryptionKey.base64FileContents)
            print("wrote the recovered key to \(file) (mode 0600)")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrap the replica's data key under a new key file; --reencrypt also replaces the data key.",
            discussion: """
                Create the new key first with `syncctl key generate FILE` (owned by the service user, \
                mode 0600), run this, then point [key] file at it before the next restart. \
                After a key leak use --reencrypt: a new data key, every record re-sealed with it in the \
                background (records stay readable; `syncctl status` shows progress; a restart resumes \
                it), and a new recovery key shown once (the old printed one stops working).
                """)
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Make a new data key and re-seal every record with it (after a key leak).")
        var reencrypt = false
        @Argument(help: "The new key file (read by the daemon, not by syncctl).") var file: String

        func run() throws {
            let absolute = URL(fileURLWithPath: file).standardizedFileURL.path
            let response = try ask(.keyRotate(file: absolute, reencrypt: reencrypt), socket: socket)
            guard reencrypt else {
                print(response.message ?? "rotated")
                return
            }
            guard let key = response.recoveryKeyText else { throw ExitCode(1) }
            print(
                "The replica has a new data key, wrapped by the key in \(absolute). Every record is being re-sealed "
                    + "with it in the background (syncctl status shows progress; records stay readable).")
            print(
                "Point [key] file at \(absolute) (or re-encrypt the systemd credential from it) before the next "
                    + "restart, then destroy the old key.")
            print()
            print("NEW RECOVERY KEY (shown once: print it, lock it away; the previous recovery key no longer works):")
            print()
            print("    \(key)")
            print()
        }
    }

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a printable recovery key, once. Print it and lock it away.",
            discussion: """
                The recovery key opens the replica if the key file is lost: write it to a key file with `syncctl key recover FILE` and point [key] at it. It is shown only once; --replace makes a new one and the old one stops working.
                """)
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Make a new recovery key; the previous one stops working.") var replace = false

        func run() throws {
            let response = try ask(.keyBackup(replace: replace), socket: socket)
            guard let key = response.recoveryKeyText else { throw ExitCode(1) }
            print("RECOVERY KEY (shown once — print it, keep it locked away, never store it on this machine):")
            print()
            print("    \(key)")
            print()
        }
    }

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
            try Self.writeKeyFile(file, contents: KeyEncryptionKey.generate().base64FileContents)
            print("wrote a new replica key to \(file) (mode 0600)")
        }

        /// Creates `file` (it must not exist) with mode 0600 and syncs it to disk.
        static func writeKeyFile(_ file: String, contents: String) throws {
            let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                FileHandle.standardError.write(Data("syncctl: cannot create \(file): \(reason)\n".utf8))
                throw ExitCode(1)
            }
            fchmod(fd, 0o600)
            let data = Data(contents.utf8)
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd)
            close(fd)
            guard written == data.count, synced == 0 else {
                unlink(file)
                FileHandle.standardError.write(Data("syncctl: cannot write \(file)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
