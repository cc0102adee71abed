/// Who may run which `syncctl` command. The control socket's peer is named by the kernel
/// (`SO_PEERCRED`: user and group ids, looked up in the system's user database), never by
/// what the client sends; this file decides what that peer may do.
///
/// | role | who | may |
/// |---|---|---|
/// | staff | members of `[control] staff_group` (`ehr-sync-staff`) | status, outbox and conflict lists, sync now, their own viewer password |
/// | admin | root, the daemon's own user, members of `[control] admin_group` (`ehr-sync-admin`) | everything: accounts, keys, held decisions, conflict review and resolution, the audit trail, retries, pause, verify |
public enum ControlRole: String, Sendable, Equatable, Comparable {
    case staff
    case admin

    public static func < (a: ControlRole, b: ControlRole) -> Bool { a == .staff && b == .admin }
}

/// The process at the other end of the control socket, as the kernel reports it.
public struct ControlPeer: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// The user's name in the system database (`uid N` when it has none).
    public var user: String
    /// Names of the peer's primary group and of every group listing the user as a member.
    public var groups: Set<String>

    /// How the trail names the peer: `amartin (uid 1000)`.
    public var actor: String { "\(user) (uid \(uid))" }

    public init(uid: UInt32, gid: UInt32, user: String, groups: Set<String>) {
        self.uid = uid
        self.gid = gid
        self.user = user
        self.groups = groups
    }
}

/// The control socket's access rule: a pure function of the peer and the command.
public struct ControlAccessPolicy: Sendable, Equatable {
    public var staffGroup: String
    public var adminGroup: String
    /// The daemon's own user: it can read the key and the replica anyway, so it is an admin.
    public var serviceUID: UInt32

    public init(staffGroup: String = "ehr-sync-staff", adminGroup: String = "ehr-sync-admin", serviceUID: UInt32) {
        self.staffGroup = staffGroup
        self.adminGroup = adminGroup
        self.serviceUID = serviceUID
    }

    /// The peer's role, or nil when it is neither staff nor admin.
    public func role(of peer: ControlPeer) -> ControlRole? {
        if peer.uid == 0 || peer.uid == serviceUID || peer.groups.contains(adminGroup) { return .admin }
        if peer.groups.contains(staffGroup) { return .staff }
        return nil
    }

    /// nil when the peer may run the command; otherwise the refusal shown to it.
    public func refusal(of command: ControlCommand, by peer: ControlPeer) -> String? {
        guard let role = role(of: peer) else {
            return "\(peer.user) is not allowed to use ehr-sync (ask the practice's administrator to add you to "
                + "the \(staffGroup) group)"
        }
        if role >= command.requiredRole { return nil }
        if case .userPasswd(let name, _) = command, name == peer.user { return nil }
        return "`\(command.name)` needs an administrator (root or a member of \(adminGroup)); \(peer.user) is staff"
    }
}

extension ControlCommand {
    /// The least role that may run the command. Staff may also change their own viewer
    /// password (`user-passwd` of the account named like their system user).
    public var requiredRole: ControlRole {
        switch self {
        case .status, .syncNow, .outbox, .conflicts: .staff
        case .pause, .resume, .held, .decideHeld, .verify, .keyRotate, .keyBackup, .backupNow, .backupRestore,
            .replicaRebuild, .outboxRetry, .conflictShow,
            .conflictResolve, .userAdd, .userSetRole, .userPasswd, .userSetDisabled, .userList, .userUnlock,
            .auditVerify, .auditList:
            .admin
        }
    }
}
