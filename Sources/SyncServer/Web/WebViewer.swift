public import Foundation
import HTTPTypes
import Hummingbird
public import Logging
import NIOCore
import SyncEngine
public import SyncModel
public import SyncStore
import Synchronization

/// What the web viewer's banner says: the EHR's state and the data's age.
public struct ViewerBanner: Sendable, Equatable {
    /// `online`, `degraded`, `outage`, `recovering`, `paused`, `starting`, `initial-sync`.
    public var state: String
    /// Since when the EHR has been failing (UTC instant), when it is.
    public var failingSince: String?
    /// Server time the local copy is complete up to.
    public var dataAsOf: String?
    /// Local changes not yet on the EHR, and conflicts awaiting review.
    public var unsent: Int
    public var conflicts: Int

    public init(state: String, failingSince: String?, dataAsOf: String?, unsent: Int, conflicts: Int) {
        self.state = state
        self.failingSince = failingSince
        self.dataAsOf = dataAsOf
        self.unsent = unsent
        self.conflicts = conflicts
    }
}

/// The staff web viewer: server-rendered pages (login, patient search, summary, print views,
/// downtime entry form) on the local API's listener, in French and English.
///
/// | route | what |
/// |---|---|
/// | `GET /login`, `POST /login` | sign in (throttled per account and per client address) |
/// | `POST /logout` | sign out |
/// | `GET /patients?q=&birthdate=&identifier=` | patient search |
/// | `GET /patients/{id}` | summary |
/// | `GET /patients/{id}/print` | printable summary |
/// | `GET /daysheet?ids=a,b,c` | day sheet: one compact page per patient |
/// | `GET`, `POST /patients/{id}/entry` | downtime entry: a note and vital signs, queued |
/// | `GET /patients/{id}/documents/{doc}/attachment/{n}` | a document's attachment |
///
/// Everything but the sign-in page needs a live session (pages redirect to `/login`, other
/// requests get 401); every POST needs the session's CSRF token; every access to a
/// patient's data is recorded in the audit trail first, and not served when it cannot be.
/// Pages are pure functions of values (``PatientSummary``, ``PageFrame``…) to ``HTML``.
public final class WebViewer: Sendable {
    public struct Dependencies: Sendable {
        public var replica: Replica
        /// Queues a downtime entry (as the signed-in account).
        public var enqueue: @Sendable (LocalChange) throws(OutboxError) -> QueuedChange
        /// Called after an entry was queued.
        public var queued: @Sendable () -> Void
        public var banner: @Sendable () -> ViewerBanner
        public var access: AccessLog
        public var sessions: SessionStore
        /// Turns an attachment `url` of a DocumentReference into the absolute URL it was
        /// stored under (the daemon resolves relative URLs against the EHR's base, as
        /// `FHIRClient.url(_:)` does when fetching them); absolute URLs by default.
        public var attachmentURL: @Sendable (String) -> String = { $0 }
        /// The practice's time zone for dates shown.
        public var timeZone: TimeZone = .current
        /// How current one patient's records are (server time), when it differs from the whole
        /// copy's (servers listed patient by patient); nil: the banner's.
        public var patientDataAsOf: @Sendable (String) -> String? = { _ in nil }

        public init(
            replica: Replica, enqueue: @escaping @Sendable (LocalChange) throws(OutboxError) -> QueuedChange,
            queued: @escaping @Sendable () -> Void, banner: @escaping @Sendable () -> ViewerBanner,
            access: AccessLog, sessions: SessionStore
        ) {
            self.replica = replica
            self.enqueue = enqueue
            self.queued = queued
            self.banner = banner
            self.access = access
            self.sessions = sessions
        }
    }

    let dependencies: Dependencies
    let logger: Logger

    /// Largest form body accepted (a long note, percent-encoded).
    static let maxFormBytes = 256 * 1024
    /// Most patients on one day sheet.
    static let maxDaySheetPatients = 60

    public init(_ dependencies: Dependencies, logger: Logger) {
        self.dependencies = dependencies
        self.logger = logger
    }

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/") { request, _ in
            self.signedIn(request) == nil ? WebResponse.redirect("/login") : WebResponse.redirect("/patients")
        }
        router.get("/login") { request, _ in self.loginPage(request) }
        router.post("/login") { request, context in
            await self.login(request, address: Self.clientAddress(context))
        }
        router.post("/logout", use: signedIn { request, _, signed in await self.logout(request, signed) })
        router.get("/patients", use: signedIn { request, _, signed in await self.search(request, signed) })
        router.get(
            "/patients/{id}",
            use: signedIn { _, context, signed in
                await self.patientPage(signed, id: context.parameters.get("id"), action: "view-summary") {
                    summary, frame in
                    PatientSummaryPage.render(summary, frame: frame)
                }
            })
        router.get(
            "/patients/{id}/print",
            use: signedIn { _, context, signed in
                await self.patientPage(signed, id: context.parameters.get("id"), action: "print") { summary, frame in
                    PrintPages.summary(summary, frame: frame)
                }
            })
        router.get(
            "/patients/{id}/entry",
            use: signedIn { _, context, signed in
                if let refused = self.clinicianOnly(signed) { return refused }
                return await self.patientPage(signed, id: context.parameters.get("id"), action: "entry-form") {
                    summary, frame in
                    DowntimeEntryPage.form(patient: summary.patient, input: .init(), problems: [], frame: frame)
                }
            })
        router.post(
            "/patients/{id}/entry",
            use: signedIn { request, context, signed in
                if let refused = self.clinicianOnly(signed) { return refused }
                return await self.entry(request, signed, id: context.parameters.get("id"))
            })
        router.get(
            "/patients/{id}/documents/{doc}/attachment/{n}",
            use: signedIn { _, context, signed in
                if let refused = self.clinicianOnly(signed) { return refused }
                return await self.attachment(
                    signed, id: context.parameters.get("id"), document: context.parameters.get("doc"),
                    index: context.parameters.get("n"))
            })
        router.get("/daysheet", use: signedIn { request, _, signed in await self.daySheet(request, signed) })
    }

    /// The session check of every page behind sign-in, once for all of them: the handler runs
    /// only with a valid session; otherwise pages go to sign-in and anything else gets 401.
    func signedIn<Context: RequestContext>(
        _ handler: @escaping @Sendable (Request, Context, Signed) async -> Response
    ) -> @Sendable (Request, Context) async -> Response {
        { request, context in
            guard let signed = self.signedIn(request) else { return self.unauthenticated(request) }
            return await handler(request, context, signed)
        }
    }

    /// The refusal of a clinical-only page (downtime entry, attachments) to a reception
    /// account; nil for a clinician. Nothing is read before it.
    func clinicianOnly(_ signed: Signed) -> Response? {
        guard !signed.session.role.seesClinicalContent else { return nil }
        logger.notice("web page refused to a reception account", metadata: ["role": "\(signed.session.role)"])
        return errorPage(.forbidden, signed, .clinicalOnly)
    }

    // MARK: Sessions

    /// A value, or the response refusing the request.
    enum Checked<Value> {
        case value(Value)
        case refused(Response)
    }

    /// A signed-in request: its session, token and page frame.
    struct Signed {
        var session: StaffSession
        var token: String
        var frame: PageFrame
        var l10n: Localization { frame.l10n }
    }

    func now() -> Double { Date().timeIntervalSince1970 }

    func signedIn(_ request: Request) -> Signed? {
        let cookies = request.headers[values: .cookie].joined(separator: "; ")
        let now = now()
        guard let token = WebSession.token(cookieHeader: cookies),
            let session = dependencies.sessions.session(token, now: now)
        else { return nil }
        let l10n = Localization(WebLanguage(account: session.language), timeZone: dependencies.timeZone)
        let frame = PageFrame(
            l10n: l10n, banner: dependencies.banner(), user: session.displayName, csrf: session.csrfToken, now: now,
            role: session.role)
        return Signed(session: session, token: token, frame: frame)
    }

    /// Without a session: pages go to the sign-in page, anything else is refused with 401.
    func unauthenticated(_ request: Request) -> Response {
        if request.method == .get || request.method == .head {
            return WebResponse.redirect("/login", extra: [(.setCookie, WebSession.clearCookie())])
        }
        let l10n = Localization(WebLanguage(acceptLanguage: request.headers[.acceptLanguage]))
        return WebResponse.text(.unauthorized, l10n(.sessionRequired))
    }

    /// The posted form of a signed-in request whose `csrf` field matches the session's;
    /// otherwise the response refusing it (nothing done).
    func checkedForm(_ request: Request, _ signed: Signed) async -> Checked<WebForm> {
        let form: WebForm
        do {
            let body = try await request.body.collect(upTo: Self.maxFormBytes)
            form = WebForm(encoded: String(buffer: body))
        } catch {
            return .refused(WebResponse.text(.contentTooLarge, signed.l10n(.badRequest)))
        }
        guard WebSession.csrfMatches(form["csrf"], expected: signed.session.csrfToken) else {
            logger.warning("web form refused: missing or wrong CSRF token")
            return .refused(
                WebResponse.html(
                    .forbidden,
                    PageLayout.message(
                        title: signed.l10n(.badRequest), text: signed.l10n(.forbidden), l10n: signed.l10n,
                        frame: signed.frame)))
        }
        return .value(form)
    }

    /// Records an access in the audit trail; nil when done, else the response refusing to
    /// show the data.
    func audit(
        _ signed: Signed, action: String, patient: String?, target: String?, detail: String? = nil
    ) async -> Response? {
        await audit(signed, action: action, patients: patient.map { [$0] } ?? [], target: target, detail: detail)
    }

    /// Records an access that showed several patients (a search's list): one line each.
    func audit(
        _ signed: Signed, action: String, patients: [String], target: String?, detail: String? = nil
    ) async -> Response? {
        do {
            try await dependencies.access.record(
                actor: signed.session.account, action: action, patients: patients, target: target, detail: detail)
            return nil
        } catch {
            logger.error(
                "web access not recorded; data withheld", metadata: ["action": "\(action)", "reason": "\(error)"])
            return WebResponse.text(.internalServerError, signed.l10n(.auditFailed))
        }
    }

    func errorPage(_ status: HTTPResponse.Status, _ signed: Signed, _ key: Localization.Key) -> Response {
        WebResponse.html(
            status,
            PageLayout.message(title: signed.l10n(key), text: signed.l10n(key), l10n: signed.l10n, frame: signed.frame))
    }

    /// The client's address for throttling, from the connection (never from a header).
    static func clientAddress<Context: RequestContext>(_ context: Context) -> String {
        if let remote = (context as? any RemoteAddressRequestContext)?.remoteAddress {
            return remote.ipAddress ?? "\(remote)"
        }
        return "connection"
    }

    // MARK: Pages

    func search(_ request: Request, _ signed: Signed) async -> Response {
        let query = PatientSearchPage.Query(form: WebForm(encoded: request.uri.query ?? ""))
        guard !query.isEmpty else {
            return WebResponse.html(.ok, PatientSearchPage.render(query: query, outcome: .none, frame: signed.frame))
        }
        let search: SearchRequest
        do throws(SearchError) {
            search = try SearchRequest.parse(type: "Patient", query: query.searchParameters)
        } catch {
            return WebResponse.html(
                .badRequest,
                PatientSearchPage.render(query: query, outcome: .invalid(error.description), frame: signed.frame))
        }
        let page: SearchPage
        do {
            page = try dependencies.replica.search(search)
        } catch {
            logger.error("web search failed", metadata: ["reason": "\(error)"])
            return errorPage(.internalServerError, signed, .readFailed)
        }
        let rows = page.matches.map(\.json).compactMap(PatientSearchPage.Row.init(json:))
        if let refused = await audit(
            signed, action: "search", patients: rows.map(\.id), target: "Patient search, \(page.total) results")
        {
            return refused
        }
        return WebResponse.html(
            .ok, PatientSearchPage.render(query: query, outcome: .rows(rows, total: page.total), frame: signed.frame))
    }

    /// A page about one patient: the local view's `$everything`, recorded, then rendered.
    func patientPage(
        _ signed: Signed, id: String?, action: String, render: (PatientSummary, PageFrame) -> HTML
    ) async -> Response {
        switch summary(id, signed) {
        case .refused(let response): return response
        case .value(let summary):
            if let refused = await audit(
                signed, action: action, patient: summary.patient.id, target: "Patient/\(summary.patient.id)")
            {
                return refused
            }
            var frame = signed.frame
            if let asOf = dependencies.patientDataAsOf(summary.patient.id),
                frame.banner.dataAsOf.map({ asOf < $0 }) ?? true
            {
                // This patient's records are as of their last listing, not the whole copy's.
                frame.banner.dataAsOf = asOf
            }
            return WebResponse.html(.ok, render(summary, frame))
        }
    }

    /// One patient's summary from the local view (only the types it shows, and of those only
    /// what `role` may read: a reception account's pages never load clinical records); nil
    /// when unknown.
    func loadSummary(_ id: String, role: ViewerRole) throws(ReplicaError) -> PatientSummary? {
        let types =
            role.readableTypes.map { PatientSummary.resourceTypes.intersection($0) } ?? PatientSummary.resourceTypes
        guard let resources = try dependencies.replica.everything(patientID: id, types: types)
        else { return nil }
        return PatientSummary(patientID: id, resources: resources.map(\.json))
    }

    func summary(_ id: String?, _ signed: Signed) -> Checked<PatientSummary> {
        guard let id, FHIRID.isValid(id) else { return .refused(errorPage(.notFound, signed, .patientNotFound)) }
        do {
            guard let summary = try loadSummary(id, role: signed.session.role) else {
                return .refused(errorPage(.notFound, signed, .patientNotFound))
            }
            return .value(summary)
        } catch {
            logger.error("web patient read failed", metadata: ["reason": "\(error)"])
            return .refused(errorPage(.internalServerError, signed, .readFailed))
        }
    }

    func daySheet(_ request: Request, _ signed: Signed) async -> Response {
        let form = WebForm(encoded: request.uri.query ?? "")
        var ids: [String] = []
        for value in form.values("ids") {
            for id in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
            where !id.isEmpty && !ids.contains(id) {
                ids.append(id)
            }
        }
        var entries: [PrintPages.DaySheetEntry] = []
        var shown: [String] = []
        for id in ids.prefix(Self.maxDaySheetPatients) {
            guard FHIRID.isValid(id) else {
                entries.append(.missing(id))
                continue
            }
            do {
                if let summary = try loadSummary(id, role: signed.session.role) {
                    entries.append(.patient(summary))
                    shown.append(id)
                } else {
                    entries.append(.missing(id))
                }
            } catch {
                logger.error("web day sheet read failed", metadata: ["reason": "\(error)"])
                return errorPage(.internalServerError, signed, .readFailed)
            }
        }
        if let refused = await auditEach(signed, action: "daysheet", patients: shown) { return refused }
        return WebResponse.html(.ok, PrintPages.daySheet(entries, frame: signed.frame))
    }

    /// Records an access to each patient before any is shown; recorded together, they share
    /// one durable commit (``GroupCommit``) rather than one each. The first refusal, if any.
    func auditEach(_ signed: Signed, action: String, patients: [String]) async -> Response? {
        await withTaskGroup(of: Response?.self) { group in
            for id in patients {
                group.addTask { await self.audit(signed, action: action, patient: id, target: "Patient/\(id)") }
            }
            var refused: Response?
            for await response in group where refused == nil { refused = response }
            return refused
        }
    }

    func attachment(_ signed: Signed, id: String?, document: String?, index: String?) async -> Response {
        guard let id, let document, let index = index.flatMap({ Int($0) }), index >= 0, FHIRID.isValid(id),
            FHIRID.isValid(document)
        else { return WebResponse.text(.notFound, signed.l10n(.notFound)) }
        do {
            guard let json = try dependencies.replica.localViewData(type: "DocumentReference", id: document),
                let source = PatientSummary.attachment(
                    documentID: document, index: index, patientID: id, resources: [json])
            else { return WebResponse.text(.notFound, signed.l10n(.notFound)) }
            let data: Data
            let contentType: String?
            switch source {
            case .inline(let bytes, let type):
                (data, contentType) = (bytes, type)
            case .url(let url, let type):
                guard let stored = try dependencies.replica.attachments.data(url: dependencies.attachmentURL(url))
                else {
                    return WebResponse.text(.notFound, signed.l10n(.attachmentNotStored))
                }
                (data, contentType) = PatientSummary.nativeContent(stored, contentType: type)
            }
            if let refused = await audit(
                signed, action: "attachment", patient: id, target: "DocumentReference/\(document)",
                detail: "content \(index)")
            {
                return refused
            }
            return WebResponse.download(
                data, contentType: contentType, filename: WebResponse.filename(index: index, contentType: contentType))
        } catch {
            logger.error("web attachment read failed", metadata: ["reason": "\(error)"])
            return WebResponse.text(.internalServerError, signed.l10n(.readFailed))
        }
    }

    // MARK: Downtime entry

    func entry(_ request: Request, _ signed: Signed, id: String?) async -> Response {
        let form: WebForm
        switch await checkedForm(request, signed) {
        case .refused(let response): return response
        case .value(let checked): form = checked
        }
        let summary: PatientSummary
        switch self.summary(id, signed) {
        case .refused(let response): return response
        case .value(let found): summary = found
        }
        let patientID = summary.patient.id
        let input = DowntimeEntry.Input(form: form)
        switch DowntimeEntry.build(
            input, patientID: patientID, author: signed.session.displayName, now: signed.frame.now)
        {
        case .failure(let problems):
            if let refused = await audit(
                signed, action: "entry-form", patient: patientID, target: "Patient/\(patientID)")
            {
                return refused
            }
            return WebResponse.html(
                .unprocessableContent,
                DowntimeEntryPage.form(
                    patient: summary.patient, input: input, problems: problems.problems, frame: signed.frame))
        case .success(let resources):
            let kinds = resources.map(\.resourceType).joined(separator: ", ")
            if let refused = await audit(
                signed, action: "entry", patient: patientID, target: "Patient/\(patientID)", detail: kinds)
            {
                return refused
            }
            var queued: [(kind: DowntimeEntry.Kind, seq: Int64)] = []
            for resource in resources {
                do {
                    let change = LocalChange(
                        operation: .create, resourceType: resource.resourceType, id: nil, resource: resource.json,
                        author: signed.session.account)
                    queued.append((resource.kind, try dependencies.enqueue(change).seq))
                } catch {
                    logger.error(
                        "web entry not queued",
                        metadata: [
                            "type": "\(resource.resourceType)", "queued": "\(queued.count)", "reason": "\(error)",
                        ])
                    if !queued.isEmpty { dependencies.queued() }
                    let done = queued.map { String($0.seq) }.joined(separator: ", ")
                    let text =
                        signed.l10n(.queueFailed, error.description)
                        + (done.isEmpty ? "" : " " + signed.l10n(.entryEntryNumbers, done))
                    return WebResponse.html(
                        .internalServerError,
                        PageLayout.message(
                            title: signed.l10n(.entryTitle), text: text, l10n: signed.l10n, frame: signed.frame))
                }
            }
            dependencies.queued()
            logger.info("web entry queued", metadata: ["changes": "\(queued.count)"])
            var frame = signed.frame
            frame.banner = dependencies.banner()
            return WebResponse.html(
                .ok, DowntimeEntryPage.confirmation(patient: summary.patient, queued: queued, frame: frame))
        }
    }
}
