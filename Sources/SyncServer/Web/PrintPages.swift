import SyncEngine
import SyncModel
import SyncStore

/// Pages meant for paper: one patient's summary, and the day sheet (one compact page per
/// patient: allergies, active problems, current medications). No navigation; the banner
/// and who printed them when are printed too.
enum PrintPages {
    static func summary(_ summary: PatientSummary, frame: PageFrame) -> HTML {
        let l10n = frame.l10n
        let id = summary.patient.id
        guard frame.role.seesClinicalContent else {
            let content: HTML = """
                <h1>\(l10n(.titleWith, l10n(.printTitle), summary.patient.name))</h1>
                \(PatientSummaryPage.demographics(summary.patient, l10n: l10n, now: frame.now))
                <p class="none">\(l10n(.clinicalHidden))</p>
                """
            return PageLayout.printPage(title: summary.patient.name, frame: frame, content: content)
        }
        let content: HTML = """
            <h1>\(l10n(.titleWith, l10n(.printTitle), summary.patient.name))\(PageLayout.badge(summary.patient.pending, l10n: l10n))</h1>
            \(PatientSummaryPage.demographics(summary.patient, l10n: l10n, now: frame.now))
            \(PatientSummaryPage.allergies(summary.allergies, l10n: l10n))
            \(PatientSummaryPage.problems(summary.problems, l10n: l10n))
            \(PatientSummaryPage.medications(summary.medications, l10n: l10n))
            \(PatientSummaryPage.encounters(summary.encounters, l10n: l10n, limit: 5))
            \(PatientSummaryPage.results(summary.results, l10n: l10n, limit: 20))
            \(PatientSummaryPage.immunizations(summary.immunizations, l10n: l10n))
            \(PatientSummaryPage.documents(summary.documents, patientID: id, l10n: l10n, notes: false, limit: 10))
            """
        return PageLayout.printPage(title: summary.patient.name, frame: frame, content: content)
    }

    /// A day sheet entry: a patient's summary, or an id that is not in the local copy.
    enum DaySheetEntry: Sendable {
        case patient(PatientSummary)
        case missing(String)
    }

    static func daySheet(_ entries: [DaySheetEntry], frame: PageFrame) -> HTML {
        let l10n = frame.l10n
        guard !entries.isEmpty else {
            return PageLayout.printPage(
                title: l10n(.daySheetTitle), frame: frame,
                content: "<h1>\(l10n(.daySheetTitle))</h1><p>\(l10n(.daySheetEmpty))</p>")
        }
        let sheets = entries.map { entry -> HTML in
            switch entry {
            case .missing(let id):
                return "<div class=\"sheet\"><h1>\(id)</h1><p class=\"error\">\(l10n(.patientNotFound))</p></div>"
            case .patient(let s):
                let p = s.patient
                var line = [l10n.date(p.birthDate), l10n.gender(p.gender)]
                if let birthDate = p.birthDate, let age = Localization.age(birthDate: birthDate, now: frame.now) {
                    line.append(l10n(.age, String(age)))
                }
                if let identifier = p.identifiers.first { line.append(identifier.value) }
                return """
                    <div class="sheet">
                    <h1>\(p.name)\(PageLayout.badge(p.pending, l10n: l10n))</h1>
                    <p>\(line.filter { !$0.isEmpty }.joined(separator: " · "))</p>
                    \(frame.role.seesClinicalContent ? clinical(s, l10n: l10n) : .empty)
                    </div>
                    """
            }
        }
        return PageLayout.printPage(
            title: l10n(.daySheetTitle), frame: frame, content: HTML.join(sheets, separator: "\n"))
    }

    /// A day sheet's clinical part: allergies, active problems, current medications.
    static func clinical(_ s: PatientSummary, l10n: Localization) -> HTML {
        """
        \(PatientSummaryPage.allergies(s.allergies, l10n: l10n))
        \(PatientSummaryPage.problems(s.problems, l10n: l10n))
        \(PatientSummaryPage.medications(s.medications, l10n: l10n))
        """
    }
}
