import Crypto
import Foundation
import SyncEngine
public import SyncModel
import SyncStore
import Synchronization

/// A signed-in staff member's session.
public struct StaffSession: Sendable, Equatable {
    public var account: String
    public var displayName: String
    public var language: String
    /// The account's role when the session opened (a role change closes its sessions).
    public var role: ViewerRole
    /// Sent with every form and checked on every POST.
    public var csrfToken: String
    public var createdAt: Double
    public var lastSeen: Double
}

/// Sessions held in memory only (a restart signs everyone out): random 256-bit tokens in
/// HttpOnly, Secure, SameSite=Strict cookies, with an idle and an absolute timeout.
public final class SessionStore: Sendable {
    public let idleTimeout: Double
    public let absoluteTimeout: Double
    let sessions = Mutex<[String: StaffSession]>([:])
    /// Per account, how many times its sessions were all closed (``closeAll(account:)``): a
    /// sign-in that read the account before a change (role, password, disabled) opens no session
    /// after it (``open(account:now:epoch:)``).
    let epochs = Mutex<[String: Int]>([:])
    /// Sign-in attempts (``LoginThrottle``), shared with the control socket's `user unlock`.
    let logins = Mutex(LoginThrottle())

    /// Clears the sign-in slow-down of an account; returns how many addresses it covered.
    public func unlock(account: String) -> Int {
        logins.withLock { $0.unlock(account: account) }
    }

    public init(idleTimeout: Double = 900, absoluteTimeout: Double = 8 * 3600) {
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
    }

    public static func randomToken() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Where an account's sessions stand: read before reading the account to sign it in.
    public func epoch(of account: String) -> Int { epochs.withLock { $0[account, default: 0] } }

    /// Opens a session; returns its token, or nil when the account's sessions were closed
    /// since `epoch` was read (the account changed while it was signing in: sign in again).
    public func open(account: StaffAccount, now: Double, epoch: Int? = nil) -> String? {
        let token = Self.randomToken()
        let session = StaffSession(
            account: account.name, displayName: account.displayName, language: account.language, role: account.role,
            csrfToken: Self.randomToken(), createdAt: now, lastSeen: now)
        return epochs.withLock { epochs -> String? in
            if let epoch, epochs[account.name, default: 0] != epoch { return nil }
            sessions.withLock { all in
                all = all.filter { isLive($0.value, now: now) }
                all[token] = session
            }
            return token
        }
    }

    /// The live session of a token, touched; nil when unknown or expired.
    public func session(_ token: String?, now: Double) -> StaffSession? {
        guard let token else { return nil }
        return sessions.withLock { all in
            guard var session = all[token] else { return nil }
            guard isLive(session, now: now) else {
                all[token] = nil
                return nil
            }
            session.lastSeen = now
            all[token] = session
            return session
        }
    }

    public func close(_ token: String?) {
        guard let token else { return }
        _ = sessions.withLock { $0.removeValue(forKey: token) }
    }

    /// Signs an account out everywhere (disabled, password changed).
    public func closeAll(account: String) {
        epochs.withLock { epochs in
            epochs[account, default: 0] += 1
            sessions.withLock { all in all = all.filter { $0.value.account != account } }
        }
    }

    func isLive(_ s: StaffSession, now: Double) -> Bool {
        now - s.lastSeen < idleTimeout && now - s.createdAt < absoluteTimeout
    }
}
