import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// The session cookie and the CSRF check. Pure.
///
/// A session is a random token (``SessionStore/randomToken()``: 43 base64url characters)
/// in the `ehr_sync_session` cookie, `HttpOnly` (out of reach of scripts), `Secure`,
/// `SameSite=Strict` (not sent with requests started by another site), `Path=/`.
public enum WebSession {
    public static let cookieName = "ehr_sync_session"
    /// The sign-in form's own CSRF cookie (before any session exists): its value must come
    /// back in the form's `csrf` field, so another site cannot sign a browser in.
    public static let loginCookieName = "ehr_sync_login"

    /// The session token in the `Cookie` header(s) (several joined with `; `), or nil. A
    /// value that cannot be a token (other characters, too long) is ignored.
    public static func token(cookieHeader: String?) -> String? {
        token(cookieHeader: cookieHeader, named: cookieName)
    }

    /// The token-shaped value of the cookie `name`, or nil.
    public static func token(cookieHeader: String?, named name: String) -> String? {
        guard let cookieHeader else { return nil }
        for item in cookieHeader.split(separator: ";") {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == name else { continue }
            var value = Substring(pair[1].trimmingCharacters(in: .whitespaces))
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            if isTokenShaped(value) { return String(value) }
        }
        return nil
    }

    static func isTokenShaped(_ value: Substring) -> Bool {
        (16...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                    || b == 0x5F
            }
    }

    /// `Set-Cookie` opening a session.
    public static func setCookie(token: String) -> String {
        "\(cookieName)=\(token); HttpOnly; Secure; SameSite=Strict; Path=/"
    }

    /// `Set-Cookie` carrying the sign-in form's CSRF token (sent back to `/login` only, for an hour).
    public static func setLoginCookie(token: String) -> String {
        "\(loginCookieName)=\(token); HttpOnly; Secure; SameSite=Strict; Path=/login; Max-Age=3600"
    }

    /// `Set-Cookie` removing the session cookie.
    public static func clearCookie() -> String {
        "\(cookieName)=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"
    }

    /// Whether a form's `csrf` field is the session's token (constant time in the length of
    /// the expected token).
    public static func csrfMatches(_ sent: String?, expected: String) -> Bool {
        guard let sent, !expected.isEmpty else { return false }
        let a = Array(sent.utf8)
        let b = Array(expected.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in b.indices { difference |= (i < a.count ? a[i] : 0) ^ b[i] }
        return difference == 0
    }
}
