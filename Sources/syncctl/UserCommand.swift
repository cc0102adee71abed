import ArgumentParser
import Foundation
import SyncModel

#if canImport(Glibc)
    import Glibc
#endif

struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage the staff accounts of the web viewer and the local API.",
        discussion: """
            Passwords are asked twice without echo, or read as one line from standard input when \
            it is not a terminal (for scripts). They go to the daemon over the control socket, \
            which stores only a salted hash (PBKDF2-SHA256); at least \(PasswordHash.minimumLength) \
            characters. Every change is recorded in the audit trail with your user name.
            """,
        subcommands: [List.self, Add.self, Role.self, Passwd.self, Disable.self, Enable.self, Unlock.self],
        defaultSubcommand: List.self)

    enum Language: String, ExpressibleByArgument, CaseIterable {
        case fr, en
    }

    /// What the account sees in the web viewer (``ViewerRole``).
    enum RoleName: String, ExpressibleByArgument, CaseIterable {
        case clinician, reception

        var role: ViewerRole { ViewerRole(rawValue: rawValue)! }
    }

    static let roleHelp = ArgumentHelp(
        "clinician (everything clinical, downtime entry) or reception (search, demographics, day lists; "
            + "no clinical content).")

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the staff accounts (the default).")
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let users = try ask(.userList, socket: socket).userList ?? []
            if json {
                try printJSON(users)
                return
            }
            print(StaffAccountSummary.listText(users), terminator: "")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a staff account; asks for its password.")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Login name: 2 to 64 lowercase letters, digits, '.', '-', '_'.") var name: String
        @Option(name: .long, help: "Name shown in pages and as author, e.g. \"Dr A. Martin\" (default: NAME).")
        var displayName: String?
        @Option(name: .long, help: "Language of the web viewer: fr or en.") var language: Language = .fr
        @Option(name: .long, help: UserCommand.roleHelp) var role: RoleName = .clinician

        func validate() throws { try validateName(name) }

        func run() throws {
            let command = ControlCommand.userAdd(
                name: name, displayName: displayName, language: language.rawValue,
                password: try PasswordInput.read(for: name), role: role.role)
            print(try ask(command, socket: socket).message ?? "added")
        }
    }

    struct Role: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change what an account sees in the web viewer; signs it out everywhere.")
        @OptionGroup var account: AccountArguments
        @Argument(help: UserCommand.roleHelp) var role: RoleName

        func run() throws {
            let answer = try ask(.userSetRole(name: account.name, role: role.role), socket: account.socket)
            print(answer.message ?? "changed")
        }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a new password for a staff account; signs it out everywhere.")
        @OptionGroup var account: AccountArguments

        func run() throws {
            let command = ControlCommand.userPasswd(
                name: account.name, password: try PasswordInput.read(for: account.name))
            print(try ask(command, socket: account.socket).message ?? "changed")
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop an account from signing in; signs it out everywhere. Its history stays.")
        @OptionGroup var account: AccountArguments

        func run() throws { try account.setDisabled(true) }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a disabled account sign in again.")
        @OptionGroup var account: AccountArguments

        func run() throws { try account.setDisabled(false) }
    }

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let an account sign in again at once after failed attempts slowed it down (administrators).")
        @OptionGroup var account: AccountArguments

        func run() throws {
            print(try ask(.userUnlock(name: account.name), socket: account.socket).message ?? "cleared")
        }
    }
}

/// The socket and the account a `syncctl user` command acts on.
struct AccountArguments: ParsableArguments {
    @OptionGroup var socket: SocketOptions
    @Argument(help: "The account's login name.") var name: String

    func validate() throws { try validateName(name) }

    func setDisabled(_ disabled: Bool) throws {
        let answer = try ask(.userSetDisabled(name: name, disabled: disabled), socket: socket)
        print(answer.message ?? (disabled ? "disabled" : "enabled"))
    }
}

func validateName(_ name: String) throws {
    guard StaffAccount.isValidName(name) else {
        throw ValidationError(
            "invalid user name: 2 to 64 characters, lowercase letters, digits, '.', '-' and '_'")
    }
}

/// A new password: typed twice without echo on a terminal, or one line of standard input
/// otherwise. Never echoed, logged or written anywhere by syncctl.
enum PasswordInput {
    static func read(for name: String) throws -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            guard var line = readLine(strippingNewline: true), !line.isEmpty else {
                fail("no password on standard input (one line expected)")
            }
            if line.hasSuffix("\r") { line.removeLast() }
            return line
        }
        guard let first = readHidden(prompt: "New password for \(name): "), !first.isEmpty else {
            fail("no password given")
        }
        guard first.count >= PasswordHash.minimumLength else {
            fail("the password must be at least \(PasswordHash.minimumLength) characters")
        }
        guard let second = readHidden(prompt: "Type it again: "), second == first else {
            fail("the two passwords differ; nothing was changed")
        }
        return first
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("syncctl: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// One line from the terminal with echo off; the terminal is restored afterwards, and
    /// on Ctrl-C, SIGTERM or SIGHUP while reading.
    /// Echo goes off before the prompt is shown and input already typed is kept (TCSANOW),
    /// so both lines may be pasted at once.
    static func readHidden(prompt: String) -> String? {
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else {
            FileHandle.standardError.write(Data(prompt.utf8))
            return readLine(strippingNewline: true)
        }
        savedTerminal = original
        var quiet = original
        quiet.c_lflag &= ~tcflag_t(ECHO)
        let signals = [SIGINT, SIGTERM, SIGHUP]
        let previous = signals.map { signal($0, restoreTerminalAndExit) }
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
        FileHandle.standardError.write(Data(prompt.utf8))
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &original)
            for (s, handler) in zip(signals, previous) { signal(s, handler) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true)
    }
}

/// The terminal settings before echo was turned off; written before the signal handlers
/// that read it are installed, and only read by them.
nonisolated(unsafe) private var savedTerminal = termios()

/// Signal handler: echo back on, then exit as the signal would.
private func restoreTerminalAndExit(_ signal: Int32) {
    tcsetattr(STDIN_FILENO, TCSANOW, &savedTerminal)
    _exit(128 + signal)
}
