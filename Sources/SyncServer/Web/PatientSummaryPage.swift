import SyncEngine
import SyncModel
import SyncStore

/// The patient summary: demographics, allergies, active problems, current medications,
/// recent encounters and results, immunizations, documents. The sections are shared with
/// the print view and the day sheet.
enum PatientSummaryPage {
    static let encounterLimit = 10
    static let resultLimit = 30
    static let documentLimit = 20

    static func render(_ summary: PatientSummary, frame: PageFrame) -> HTML {
        let l10n = frame.l10n
        let id = summary.patient.id
        guard frame.role.seesClinicalContent else {
            let content: HTML = """
                <h1>\(summary.patient.name)\(PageLayout.badge(summary.patient.pending, l10n: l10n))</h1>
                <div class="actions">
                <a class="button" href="\(WebURL.with("/daysheet", query: [("ids", id)]))">\(l10n(.navDaySheet))</a>
                </div>
                \(demographics(summary.patient, l10n: l10n, now: frame.now))
                <p class="none">\(l10n(.clinicalHidden))</p>
                """
            return PageLayout.page(title: summary.patient.name, frame: frame, content: content)
        }
        let content: HTML = """
            <h1>\(summary.patient.name)\(PageLayout.badge(summary.patient.pending, l10n: l10n))</h1>
            <div class="actions">
            <a class="button" href="\(WebURL.path("patients", id, "print"))">\(l10n(.navPrint))</a>
            <a class="button" href="\(WebURL.with("/daysheet", query: [("ids", id)]))">\(l10n(.navDaySheet))</a>
            <a class="button" href="\(WebURL.path("patients", id, "entry"))">\(l10n(.navEntry))</a>
            </div>
            \(demographics(summary.patient, l10n: l10n, now: frame.now))
            \(allergies(summary.allergies, l10n: l10n))
            \(problems(summary.problems, l10n: l10n))
            \(medications(summary.medications, l10n: l10n))
            \(encounters(summary.encounters, l10n: l10n))
            \(results(summary.results, l10n: l10n))
            \(immunizations(summary.immunizations, l10n: l10n))
            \(documents(summary.documents, patientID: id, l10n: l10n, notes: true))
            """
        return PageLayout.page(title: summary.patient.name, frame: frame, content: content)
    }

    // MARK: Sections

    static func section(_ id: String, _ title: String, _ body: HTML) -> HTML {
        "<section id=\"\(id)\"><h2>\(title)</h2>\n\(body)\n</section>"
    }

    /// A table, or "none recorded" when there are no rows.
    /// `dated`: the first column is a date (kept on one line).
    static func table(_ headers: [String], _ rows: [HTML], l10n: Localization, dated: Bool = false) -> HTML {
        guard !rows.isEmpty else { return "<p class=\"none\">\(l10n(.noneRecorded))</p>" }
        let head = HTML.join(headers.map { h -> HTML in "<th>\(h)</th>" })
        return
            "<table class=\"\(dated ? "dated" : "")\"><thead><tr>\(head)</tr></thead><tbody>\n\(HTML.join(rows, separator: "\n"))\n</tbody></table>"
    }

    static func cells(_ values: [HTML]) -> HTML {
        "<tr>\(HTML.join(values.map { v -> HTML in "<td>\(v)</td>" }))</tr>"
    }

    static func demographics(_ p: PatientSummary.Demographics, l10n: Localization, now: Double) -> HTML {
        var items: [HTML] = []
        func item(_ label: String, _ value: HTML) { items.append("<dt>\(label)</dt><dd>\(value)</dd>") }
        item(l10n(.name), "\(p.name)")
        if let birthDate = p.birthDate {
            let age = Localization.age(birthDate: birthDate, now: now).map { " (\(l10n(.age, String($0))))" } ?? ""
            item(l10n(.birthDate), "\(l10n.date(birthDate))\(age)")
        }
        if let gender = p.gender { item(l10n(.gender), "\(l10n.gender(gender))") }
        for identifier in p.identifiers {
            let label = identifier.label.isEmpty ? l10n(.identifier) : identifier.label
            item(label, "\(identifier.value)")
        }
        for address in p.addresses { item(l10n(.address), "\(address)") }
        for phone in p.phones { item(l10n(.phone), "\(phone)") }
        if let deceased = p.deceased { item(l10n(.deceased), "\(deceased.isEmpty ? "✓" : l10n.date(deceased))") }
        return section("demographics", l10n(.demographics), "<dl class=\"demographics\">\(items)</dl>")
    }

    static func allergies(_ list: [PatientSummary.Allergy], l10n: Localization) -> HTML {
        let rows = list.map { a -> HTML in
            let critical = a.criticality == "high" ? "critical" : ""
            return cells([
                "<span class=\"\(critical)\">\(a.substance)</span>\(PageLayout.badge(a.pending, l10n: l10n))",
                "\(a.clinicalStatus)", "<span class=\"\(critical)\">\(a.criticality)</span>",
                "\(a.reactions.joined(separator: ", "))", "\(l10n.date(a.recorded))",
            ])
        }
        return section(
            "allergies", l10n(.allergies),
            table(
                [l10n(.substance), l10n(.status), l10n(.criticality), l10n(.reactions), l10n(.recorded)], rows,
                l10n: l10n))
    }

    static func problems(_ list: [PatientSummary.Problem], l10n: Localization) -> HTML {
        let rows = list.map { p -> HTML in
            cells(["\(p.text)\(PageLayout.badge(p.pending, l10n: l10n))", "\(l10n.date(p.onset ?? p.recorded))"])
        }
        return section("problems", l10n(.problems), table([l10n(.problem), l10n(.onset)], rows, l10n: l10n))
    }

    static func medications(_ list: [PatientSummary.Medication], l10n: Localization) -> HTML {
        let rows = list.map { m -> HTML in
            cells([
                "\(m.name)\(PageLayout.badge(m.pending, l10n: l10n))", "\(m.dosage)", "\(l10n.date(m.authoredOn))",
                "\(m.prescriber)",
            ])
        }
        return section(
            "medications", l10n(.medications),
            table([l10n(.medication), l10n(.dosage), l10n(.prescribed), l10n(.prescriber)], rows, l10n: l10n))
    }

    static func encounters(_ list: [PatientSummary.Encounter], l10n: Localization, limit: Int = encounterLimit)
        -> HTML
    {
        let rows = list.prefix(limit).map { e -> HTML in
            cells([
                "\(l10n.date(e.start))", "\(e.type)\(PageLayout.badge(e.pending, l10n: l10n))", "\(e.reason)",
                "\(e.practitioner)", "\(e.place)",
            ])
        }
        return section(
            "encounters", l10n(.encounters),
            shown(list.count, limit, l10n: l10n)
                + table(
                    [l10n(.date), l10n(.type), l10n(.reason), l10n(.practitioner), l10n(.location)], Array(rows),
                    l10n: l10n, dated: true))
    }

    static func shown(_ count: Int, _ limit: Int, l10n: Localization) -> HTML {
        count > limit ? "<p class=\"hint\">\(l10n(.shownOf, String(limit), String(count)))</p>" : .empty
    }

    static func results(_ list: [PatientSummary.Result], l10n: Localization, limit: Int = resultLimit) -> HTML {
        let rows = list.prefix(limit).map { r -> HTML in
            var value = FHIRText.observationValue(r.object, l10n: l10n) ?? ""
            let components = (r.object["component"]?.arrayValue ?? []).compactMap { c -> String? in
                guard let v = FHIRText.observationValue(c, l10n: l10n) else { return nil }
                return l10n(.titleWith, FHIRText.concept(c["code"]) ?? "?", v)
            }
            if !components.isEmpty { value += (value.isEmpty ? "" : "; ") + components.joined(separator: "; ") }
            let flag: HTML =
                switch FHIRText.flag(r.object) {
                case "H": " <span class=\"flag\" title=\"\(l10n(.high))\">H</span>"
                case "L": " <span class=\"flag\" title=\"\(l10n(.low))\">L</span>"
                case let other?: " <span class=\"flag\">\(other)</span>"
                case nil: .empty
                }
            return cells([
                "\(l10n.date(r.date))", "\(r.name)\(PageLayout.badge(r.pending, l10n: l10n))", "\(value)\(flag)",
                "\(FHIRText.referenceRange(r.object, l10n: l10n))", "\(r.category)",
            ])
        }
        return section(
            "results", l10n(.results),
            shown(list.count, limit, l10n: l10n)
                + table(
                    [l10n(.date), l10n(.test), l10n(.value), l10n(.referenceRange), l10n(.category)], Array(rows),
                    l10n: l10n, dated: true))
    }

    static func immunizations(_ list: [PatientSummary.Immunization], l10n: Localization) -> HTML {
        let rows = list.map { i -> HTML in
            cells(["\(l10n.date(i.date))", "\(i.vaccine)\(PageLayout.badge(i.pending, l10n: l10n))", "\(i.status)"])
        }
        return section(
            "immunizations", l10n(.immunizations),
            table([l10n(.date), l10n(.vaccine), l10n(.status)], rows, l10n: l10n, dated: true))
    }

    /// Documents, newest first (the `limit` most recent); `notes`: the text of `text/plain`
    /// notes, folded.
    static func documents(
        _ list: [PatientSummary.Document], patientID: String, l10n: Localization, notes: Bool,
        limit: Int = documentLimit
    ) -> HTML {
        guard !list.isEmpty else {
            return section("documents", l10n(.documents), "<p class=\"none\">\(l10n(.noneRecorded))</p>")
        }
        let items = list.prefix(limit).map { d -> HTML in
            let details = [l10n.date(d.date), d.author, d.status].compactMap { $0 }.filter { !$0.isEmpty }
            let heading: HTML = """
                <strong>\(d.type)</strong> · \(details.joined(separator: " · "))\(PageLayout.badge(d.pending, l10n: l10n))
                """
            var body: [HTML] = []
            if let description = d.description { body.append("<p>\(description)</p>") }
            for content in d.contents {
                if notes, let text = content.text { body.append("<pre class=\"note\">\(text)</pre>") }
                let label = content.title ?? content.contentType ?? l10n(.download)
                if content.downloadable {
                    let link = WebURL.path(
                        "patients", patientID, "documents", d.id, "attachment", String(content.index))
                    body.append("<p><a href=\"\(link)\">\(l10n(.download))</a> (\(label))</p>")
                }
            }
            if notes {
                return "<details class=\"document\"><summary>\(heading)</summary>\n\(body)\n</details>"
            }
            return "<li>\(heading)</li>"
        }
        let shown: HTML = notes ? HTML.join(items, separator: "\n") : "<ul>\(HTML.join(items))</ul>"
        return section("documents", l10n(.documents), shown + Self.shown(list.count, limit, l10n: l10n))
    }
}
