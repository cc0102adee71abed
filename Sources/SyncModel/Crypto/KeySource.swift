public import Foundation

/// Where the key-encryption key (KEK) comes from.
///
/// The KEK is never in the configuration file: the configuration only names *where* it is.
/// Under systemd the KEK is a credential (`LoadCredentialEncrypted=replica-key`), found at
/// `$CREDENTIALS_DIRECTORY/replica-key`; otherwise it is a file that must be owned by the
/// service user and readable by nobody else (mode 0400 or 0600).
///
/// ```swift
/// let source = KeySource.resolve(configuredFile: config.keyFile)
/// let kek = try source.load()
/// ```
public enum KeySource: Sendable, Equatable, CustomStringConvertible {
    /// A systemd credential file, already protected by systemd.
    case credential(path: String)
    /// A key file named in the configuration.
    case file(path: String)

    /// Name of the systemd credential that carries the KEK.
    public static let credentialName = "replica-key"

    /// Picks the key source: the file named in the configuration if any, else the systemd
    /// credential when `$CREDENTIALS_DIRECTORY` is set.
    public static func resolve(
        configuredFile: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(KeyError) -> KeySource {
        if let configuredFile, !configuredFile.isEmpty {
            return .file(path: configuredFile)
        }
        if let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty {
            return .credential(path: dir + "/" + credentialName)
        }
        throw .noSource
    }

    public var description: String {
        switch self {
        case .credential(let path): "systemd credential \(KeySource.credentialName) (\(path))"
        case .file(let path): "key file \(path)"
        }
    }

    /// Reads the KEK, checking the file's ownership and permissions first.
    public func load() throws(KeyError) -> KeyEncryptionKey {
        let path: String
        switch self {
        case .credential(let p): path = p
        case .file(let p):
            path = p
            try Self.checkPermissions(path: p)
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(source: description, reason: Self.reason(of: error))
        }
        guard let key = KeyEncryptionKey(fileContents: data) else {
            throw .malformed(source: description)
        }
        return key
    }

    /// A key file must be a regular file owned by the user running the service, with no
    /// permission bits for group or others (0400 or 0600).
    package static func checkPermissions(path: String) throws(KeyError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            throw .unreadable(source: "key file \(path)", reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .notARegularFile(path: path)
        }
        let mode = info.st_mode & 0o7777
        let owner = info.st_uid
        let me = geteuid()
        if owner != me {
            throw .wrongOwner(path: path, owner: owner, expected: me)
        }
        if mode != 0o400 && mode != 0o600 {
            throw .loosePermissions(path: path, mode: mode)
        }
    }

    private static func reason(of error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}

/// Errors loading the key-encryption key. Messages name the source and the fix, never
/// the key.
public enum KeyError: Error, Equatable, CustomStringConvertible {
    case noSource
    case unreadable(source: String, reason: String)
    case malformed(source: String)
    case notARegularFile(path: String)
    case wrongOwner(path: String, owner: UInt32, expected: UInt32)
    case loosePermissions(path: String, mode: UInt32)

    public var description: String {
        switch self {
        case .noSource:
            return "no replica key: set [key] file = \"/path/to/replica.key\" in the configuration, "
                + "or run under systemd with LoadCredentialEncrypted=replica-key "
                + "(then $CREDENTIALS_DIRECTORY/replica-key is used)"
        case .unreadable(let source, let reason):
            return "cannot read the replica key from \(source): \(reason)"
        case .malformed(let source):
            return "the replica key in \(source) is not 32 bytes (raw) or 32 bytes in base64 on one line; "
                + "create one with `syncctl key generate FILE`"
        case .notARegularFile(let path):
            return "key file \(path) is not a regular file (links and devices are refused)"
        case .wrongOwner(let path, let owner, let expected):
            return "key file \(path) is owned by uid \(owner), but the service runs as uid \(expected); "
                + "fix with: chown \(expected) \(path)"
        case .loosePermissions(let path, let mode):
            return "key file \(path) has mode \(String(mode, radix: 8)), readable or writable by others; "
                + "it must be 0400 or 0600; fix with: chmod 600 \(path)"
        }
    }
}
