import SyncEngine
public import SyncModel
import SyncStore

/// What every signed-in page shows around its content: the EHR banner, the user, the
/// navigation and the sign-out button.
public struct PageFrame: Sendable {
    public var l10n: Localization
    public var banner: ViewerBanner
    /// The signed-in user's display name.
    public var user: String
    /// The session's CSRF token, put in every form.
    public var csrf: String
    /// Seconds since 1970 (printing time, ages).
    public var now: Double
    /// What the signed-in account may see: pages leave out what the role does not cover.
    public var role: ViewerRole

    public init(
        l10n: Localization, banner: ViewerBanner, user: String, csrf: String, now: Double,
        role: ViewerRole = .clinician
    ) {
        self.l10n = l10n
        self.banner = banner
        self.user = user
        self.csrf = csrf
        self.now = now
        self.role = role
    }
}

/// The HTML document around a page's content.
enum PageLayout {
    /// The banner's two lines: the EHR's state with the data's age, and the queue.
    static func bannerText(_ banner: ViewerBanner, l10n: Localization) -> (headline: String, detail: String?) {
        let state: String
        switch banner.state {
        case "online": state = l10n(.stateOnline)
        case "degraded": state = l10n(.stateDegraded, l10n.date(banner.failingSince))
        case "outage":
            state = banner.failingSince.map { l10n(.stateOutageSince, l10n.date($0)) } ?? l10n(.stateOutage)
        case "recovering": state = l10n(.stateRecovering)
        case "paused": state = l10n(.statePaused)
        case "initial-sync": state = l10n(.stateInitialSync)
        default: state = l10n(.stateStarting)
        }
        let age = banner.dataAsOf.map { l10n(.dataAsOf, l10n.date($0)) } ?? l10n(.dataAsOfUnknown)
        var detail: [String] = []
        if banner.unsent > 0 || banner.conflicts > 0 { detail.append(l10n(.unsentChanges, String(banner.unsent))) }
        if banner.conflicts > 0 { detail.append(l10n(.conflictsToReview, String(banner.conflicts))) }
        return (l10n(.bannerLine, state, age), detail.isEmpty ? nil : detail.joined(separator: " · "))
    }

    static func stateClass(_ state: String) -> String {
        ["online", "degraded", "outage", "recovering", "paused", "starting", "initial-sync"].contains(state)
            ? "state-\(state)" : "state-starting"
    }

    static func banner(_ banner: ViewerBanner, l10n: Localization) -> HTML {
        let text = bannerText(banner, l10n: l10n)
        let detail: HTML = text.detail.map { "<p class=\"detail\">\($0)</p>" } ?? .empty
        return """
            <div class="banner \(stateClass(banner.state))" role="status"><p>\(text.headline)</p>\(detail)</div>
            """
    }

    /// The document shell; `body` is the page's content.
    static func document(title: String, l10n: Localization, bodyClass: String = "", content: HTML) -> HTML {
        """
        <!DOCTYPE html>
        <html lang="\(l10n(.lang))"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>\(title) · \(l10n(.appName))</title>
        <style>\(HTML(raw: WebStyle.css))</style>
        </head><body class="\(bodyClass)">
        \(content)
        </body></html>
        """
    }

    /// The hidden CSRF field every form carries.
    static func csrfField(_ token: String) -> HTML {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
    }

    /// A signed-in page: banner, top bar (navigation, user, sign-out), content.
    static func page(title: String, frame: PageFrame, content: HTML) -> HTML {
        let l10n = frame.l10n
        let top: HTML = """
            \(banner(frame.banner, l10n: l10n))
            <div class="topbar"><nav><a href="/patients">\(l10n(.navSearch))</a></nav>
            <span class="user">\(l10n(.signedInAs, frame.user))</span>
            <form class="inline" method="post" action="/logout">\(csrfField(frame.csrf))<button class="secondary" type="submit">\(l10n(.signOut))</button></form>
            </div>
            <main>
            \(content)
            </main>
            """
        return document(title: title, l10n: l10n, content: top)
    }

    /// A print page: no navigation; the banner and who printed it when, on paper too.
    static func printPage(title: String, frame: PageFrame, content: HTML) -> HTML {
        let l10n = frame.l10n
        let body: HTML = """
            \(banner(frame.banner, l10n: l10n))
            <main>
            <p class="printhead">\(l10n(.printedBy, frame.user, l10n.instant(frame.now)))</p>
            <p class="hint noprint">\(l10n(.printButton))</p>
            \(content)
            </main>
            """
        return document(title: title, l10n: l10n, bodyClass: "print", content: body)
    }

    /// A short page for errors (signed in or not).
    static func message(title: String, text: String, l10n: Localization, frame: PageFrame?) -> HTML {
        let content: HTML = "<h1>\(title)</h1><p class=\"error\">\(text)</p>"
        if let frame { return page(title: title, frame: frame, content: content) }
        return document(title: title, l10n: l10n, content: "<main>\(content)</main>")
    }

    /// The badge on a record not yet on the EHR.
    static func badge(_ mark: PendingMark?, l10n: Localization) -> HTML {
        switch mark {
        case nil: .empty
        case .notSent: "<span class=\"badge pending\">\(l10n(.notSent))</span>"
        case .conflict: "<span class=\"badge conflict\">\(l10n(.inConflict))</span>"
        case .parked: "<span class=\"badge parked\">\(l10n(.parkedByEHR))</span>"
        }
    }
}
