import Foundation
import Testing

@testable import SyncModel
@testable import SyncServer

/// The session cookie, the CSRF comparison and form parsing of the web viewer.
@Suite struct WebSessionTests {
    static let token = "Zq3v9XJ2mU1-_aB4cD5eF6gH7iJ8kL9mN0oP1qR2sT3"

    @Test func theSessionTokenIsFoundAmongOtherCookies() {
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=\(Self.token)") == Self.token)
        #expect(WebSession.token(cookieHeader: "theme=dark; ehr_sync_session=\(Self.token); lang=fr") == Self.token)
        #expect(WebSession.token(cookieHeader: "  ehr_sync_session = \(Self.token) ") == Self.token)
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=\"\(Self.token)\"") == Self.token)
        // Several Cookie fields are joined with "; " before parsing.
        #expect(
            WebSession.token(cookieHeader: ["a=1", "ehr_sync_session=\(Self.token)"].joined(separator: "; "))
                == Self.token)
    }

    @Test func noTokenWithoutTheCookieOrWithAValueThatCannotBeOne() {
        #expect(WebSession.token(cookieHeader: nil) == nil)
        #expect(WebSession.token(cookieHeader: "") == nil)
        #expect(WebSession.token(cookieHeader: "other=\(Self.token)") == nil)
        #expect(WebSession.token(cookieHeader: "xehr_sync_session=\(Self.token)") == nil)
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=") == nil)
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=short") == nil)
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=\(Self.token)<script>") == nil)
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=" + String(repeating: "a", count: 200)) == nil)
        // The first well-formed one wins over a malformed duplicate.
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=bad!; ehr_sync_session=\(Self.token)") == Self.token)
    }

    @Test func aTokenFromTheSessionStoreParsesBack() {
        let token = SessionStore.randomToken()
        #expect(WebSession.token(cookieHeader: "ehr_sync_session=\(token)") == token)
    }

    /// A sign-in that read the account before an administrator changed it (role, password,
    /// disabled) opens no session: the change closed the account's sessions after saving it.
    @Test func aSignInRacingAnAccountChangeOpensNoSession() {
        let store = SessionStore()
        let account = StaffAccount(
            name: "accueil", displayName: "Accueil", language: "fr", role: .clinician, passwordHash: "x",
            createdAt: "2026-12-01T00:00:00.000Z", passwordChangedAt: "2026-12-01T00:00:00.000Z")
        let before = store.epoch(of: "accueil")
        let open = store.open(account: account, now: 100, epoch: before)
        #expect(open != nil && store.session(open, now: 101)?.role == .clinician)
        store.closeAll(account: "accueil")
        #expect(store.session(open, now: 102) == nil)
        #expect(store.open(account: account, now: 103, epoch: before) == nil)
        #expect(store.open(account: account, now: 104, epoch: store.epoch(of: "accueil")) != nil)
        #expect(store.epoch(of: "other") == 0)
    }

    @Test func theCookieIsHttpOnlySecureStrictForTheWholeSite() {
        let cookie = WebSession.setCookie(token: Self.token)
        #expect(cookie == "ehr_sync_session=\(Self.token); HttpOnly; Secure; SameSite=Strict; Path=/")
        let cleared = WebSession.clearCookie()
        #expect(cleared.hasPrefix("ehr_sync_session=;"))
        #expect(cleared.contains("Max-Age=0"))
        #expect(cleared.contains("HttpOnly") && cleared.contains("Secure") && cleared.contains("SameSite=Strict"))
    }

    @Test func theCSRFTokenMustMatchExactly() {
        let expected = SessionStore.randomToken()
        #expect(WebSession.csrfMatches(expected, expected: expected))
        #expect(!WebSession.csrfMatches(nil, expected: expected))
        #expect(!WebSession.csrfMatches("", expected: expected))
        #expect(!WebSession.csrfMatches(String(expected.dropLast()), expected: expected))
        #expect(!WebSession.csrfMatches(expected + "x", expected: expected))
        #expect(!WebSession.csrfMatches(String(expected.reversed()), expected: expected))
        #expect(!WebSession.csrfMatches("", expected: ""))
    }

    @Test func formsDecodePlusesPercentsAndRepeatedFields() {
        let form = WebForm(encoded: "name=dr.martin&password=p%C3%A9+pass%26word%3D&ids=a,b&ids=c&flag&empty=")
        #expect(form["name"] == "dr.martin")
        #expect(form["password"] == "pé pass&word=")
        #expect(form.values("ids") == ["a,b", "c"])
        #expect(form["flag"] == "")
        #expect(form["empty"] == "")
        #expect(form["missing"] == nil)
        // A malformed escape is kept as typed rather than dropping the field.
        #expect(WebForm(encoded: "q=100%")["q"] == "100%")
    }

    @Test func languageComesFromTheAccountOrTheBrowser() {
        #expect(WebLanguage(account: "fr") == .fr)
        #expect(WebLanguage(account: "en") == .en)
        #expect(WebLanguage(account: "de") == .en)
        #expect(WebLanguage(acceptLanguage: "fr-FR,fr;q=0.9,en;q=0.8") == .fr)
        #expect(WebLanguage(acceptLanguage: "en-GB,fr;q=0.5") == .en)
        #expect(WebLanguage(acceptLanguage: "de-DE, fr;q=0.5") == .fr)
        #expect(WebLanguage(acceptLanguage: nil) == .en)
    }
}
