public import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// Patient search: a form (name, birth date, identifier) and a results table linking to
/// each summary, with boxes to pick patients for the day sheet.
public enum PatientSearchPage {
    /// What was typed in the form.
    public struct Query: Sendable, Equatable {
        public var name: String
        public var birthDate: String
        public var identifier: String

        public init(name: String = "", birthDate: String = "", identifier: String = "") {
            self.name = name.trimmingCharacters(in: .whitespacesAndNewlines)
            self.birthDate = birthDate.trimmingCharacters(in: .whitespacesAndNewlines)
            self.identifier = identifier.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// From the query string: `q`, `birthdate`, `identifier`.
        public init(form: WebForm) {
            self.init(name: form["q"] ?? "", birthDate: form["birthdate"] ?? "", identifier: form["identifier"] ?? "")
        }

        public var isEmpty: Bool { name.isEmpty && birthDate.isEmpty && identifier.isEmpty }

        /// The FHIR search parameters: `name`, `birthdate` (a French `JJ/MM/AAAA` is read as
        /// such), `identifier`.
        public var searchParameters: [(String, String)] {
            var items: [(String, String)] = []
            if !name.isEmpty { items.append(("name", name)) }
            if !birthDate.isEmpty { items.append(("birthdate", Self.isoDate(birthDate))) }
            if !identifier.isEmpty { items.append(("identifier", identifier)) }
            return items
        }

        /// `05/05/1988` → `1988-05-05`; anything else unchanged.
        static func isoDate(_ text: String) -> String {
            let parts = text.split(separator: "/")
            guard parts.count == 3, parts[0].count <= 2, parts[1].count <= 2, parts[2].count == 4,
                let d = Int(parts[0]), let m = Int(parts[1]), Int(parts[2]) != nil
            else { return text }
            func two(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
            return "\(parts[2])-\(two(m))-\(two(d))"
        }
    }

    /// One patient in the results.
    public struct Row: Sendable, Equatable {
        public var id: String
        public var name: String
        public var birthDate: String?
        public var gender: String?
        public var identifier: String?
        public var pending: PendingMark?

        public init?(json: Data) {
            guard let object = try? JSONValue(data: json), let id = object["id"]?.stringValue else { return nil }
            self.id = id
            name = FHIRText.patientName(object) ?? id
            birthDate = object["birthDate"]?.stringValue
            gender = object["gender"]?.stringValue
            identifier = (object["identifier"]?.arrayValue ?? []).compactMap { $0["value"]?.stringValue }.first
            pending = PendingMark.of(object)
        }
    }

    public enum Outcome: Sendable {
        /// Nothing searched yet.
        case none
        case rows([Row], total: Int)
        /// The search was refused (the reason is the parser's, no record data).
        case invalid(String)
    }

    static func render(query: Query, outcome: Outcome, frame: PageFrame) -> HTML {
        let l10n = frame.l10n
        var results: HTML = .empty
        switch outcome {
        case .none: break
        case .invalid(let reason):
            results = "<p class=\"error\">\(l10n(.searchInvalid, reason))</p>"
        case .rows(let rows, _) where rows.isEmpty:
            results = "<p>\(l10n(.searchNoResults))</p>"
        case .rows(let rows, let total):
            let more: HTML =
                total > rows.count ? "<p class=\"hint\">\(l10n(.searchMore, String(rows.count)))</p>" : .empty
            let body = rows.map { row -> HTML in
                let link = WebURL.path("patients", row.id)
                return """
                    <tr><td><input type="checkbox" name="ids" value="\(row.id)" aria-label="\(l10n(.addToDaySheet))"></td>\
                    <td><a href="\(link)">\(row.name)</a>\(PageLayout.badge(row.pending, l10n: l10n))</td>\
                    <td>\(l10n.date(row.birthDate))</td><td>\(l10n.gender(row.gender))</td><td>\(row.identifier)</td></tr>
                    """
            }
            results = """
                <p>\(l10n(.searchResults, String(total)))</p>
                \(more)
                <form method="get" action="/daysheet">
                <table class="results"><thead><tr><th>\(l10n(.addToDaySheet))</th><th>\(l10n(.name))</th>\
                <th>\(l10n(.birthDate))</th><th>\(l10n(.gender))</th><th>\(l10n(.identifier))</th></tr></thead>
                <tbody>
                \(HTML.join(body, separator: "\n"))
                </tbody></table>
                <div class="actions"><button type="submit" class="secondary">\(l10n(.printDaySheet))</button></div>
                </form>
                """
        }
        let content: HTML = """
            <h1>\(l10n(.searchTitle))</h1>
            <form method="get" action="/patients" class="search">
            <div class="fields">
            <div><label for="q">\(l10n(.searchName))</label><input id="q" name="q" type="search" value="\(query.name)" autofocus></div>
            <div><label for="birthdate">\(l10n(.searchBirthDate))</label><input id="birthdate" name="birthdate" type="text" inputmode="numeric" placeholder="1988-05-05" value="\(query.birthDate)"></div>
            <div><label for="identifier">\(l10n(.searchIdentifier))</label><input id="identifier" name="identifier" type="text" value="\(query.identifier)"></div>
            <div><button type="submit">\(l10n(.searchButton))</button></div>
            </div>
            <p class="hint">\(l10n(.searchHint))</p>
            </form>
            \(results)
            """
        return PageLayout.page(title: l10n(.searchTitle), frame: frame, content: content)
    }
}
