import SyncEngine
import SyncModel
import SyncStore

/// The sign-in page. It shows no record data and the same message whatever went wrong
/// (an unknown account, a wrong password, a disabled account).
enum LoginPage {
    enum Message: Equatable {
        case failed
        case throttled(seconds: Int)
        case expired
    }

    /// - Parameter csrf: the token also set in the sign-in cookie (``WebSession/loginCookieName``).
    static func render(l10n: Localization, message: Message? = nil, name: String = "", csrf: String = "") -> HTML {
        let notice: HTML =
            switch message {
            case nil: .empty
            case .failed: "<p class=\"error\" role=\"alert\">\(l10n(.loginFailed))</p>"
            case .throttled(let seconds):
                "<p class=\"error\" role=\"alert\">\(l10n(.loginThrottled, String(seconds)))</p>"
            case .expired: "<p class=\"error\" role=\"alert\">\(l10n(.loginExpired))</p>"
            }
        let content: HTML = """
            <main><div class="login">
            <h1>\(l10n(.signInTitle))</h1>
            <p class="hint">\(l10n(.appName))</p>
            \(notice)
            <form method="post" action="/login" autocomplete="on">
            <input type="hidden" name="csrf" value="\(csrf)">
            <label for="name">\(l10n(.accountName))</label>
            <input id="name" name="name" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="\(name)" autofocus>
            <label for="password">\(l10n(.password))</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required>
            <button type="submit">\(l10n(.signIn))</button>
            </form>
            </div></main>
            """
        return PageLayout.document(title: l10n(.signInTitle), l10n: l10n, content: content)
    }
}
