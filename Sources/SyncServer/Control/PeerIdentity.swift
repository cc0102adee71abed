import NIOCore
import SyncModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The control socket's peer as the kernel names it: `SO_PEERCRED` gives the user and group
/// ids of the process that connected (not what it claims); the system's user database gives
/// the names and the groups listing that user.
enum PeerIdentity {
    /// `struct ucred` (pid, uid, gid), laid out as the kernel writes it.
    typealias Credentials = (pid: Int32, uid: UInt32, gid: UInt32)

    /// Asks the channel's socket for its peer's credentials.
    static func credentials(of channel: any Channel) -> EventLoopFuture<Credentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    }

    /// The peer with its user name and groups from the system database.
    static func peer(_ credentials: Credentials) -> ControlPeer {
        let uid = credentials.uid
        let gid = credentials.gid
        var groups: Set<String> = []
        if let group = groupName(gid) { groups.insert(group) }
        guard let (name, primary) = user(uid) else {
            return ControlPeer(uid: uid, gid: gid, user: "uid \(uid)", groups: groups)
        }
        if let group = groupName(primary) { groups.insert(group) }
        for id in memberships(name, primary: primary) {
            if let group = groupName(id) { groups.insert(group) }
        }
        return ControlPeer(uid: uid, gid: gid, user: name, groups: groups)
    }

    static func user(_ uid: UInt32) -> (name: String, gid: UInt32)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return nil }
        return (String(cString: name), entry.pw_gid)
    }

    static func groupName(_ gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name
        else { return nil }
        return String(cString: name)
    }

    /// The gid of a group by name, or nil when the system has none.
    static func groupID(_ name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }

    static func memberships(_ name: String, primary: UInt32) -> [UInt32] {
        var count: Int32 = 64
        while true {
            var ids = [gid_t](repeating: 0, count: Int(count))
            let found = getgrouplist(name, primary, &ids, &count)
            if found >= 0 { return Array(ids.prefix(Int(count))) }
            if count > 65_536 { return [] }
            count = max(count, 128) * 2
        }
    }
}
