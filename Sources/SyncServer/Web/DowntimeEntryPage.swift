import SyncEngine
import SyncModel
import SyncStore

/// The downtime entry form (a consultation note and vital signs for one patient) and the
/// confirmation naming the outbox entries it went into.
enum DowntimeEntryPage {
    static func label(_ field: DowntimeEntry.Field, l10n: Localization) -> String {
        switch field {
        case .note: l10n(.entryNote)
        case .weight: l10n(.weight)
        case .height: l10n(.height)
        case .heartRate: l10n(.heartRate)
        case .systolic: l10n(.systolic)
        case .diastolic: l10n(.diastolic)
        case .temperature: l10n(.temperature)
        }
    }

    static func label(_ kind: DowntimeEntry.Kind, l10n: Localization) -> String {
        switch kind {
        case .note: l10n(.progressNote)
        case .weight: label(DowntimeEntry.Field.weight, l10n: l10n)
        case .height: label(DowntimeEntry.Field.height, l10n: l10n)
        case .heartRate: label(DowntimeEntry.Field.heartRate, l10n: l10n)
        case .bloodPressure: l10n(.bloodPressure)
        case .temperature: label(DowntimeEntry.Field.temperature, l10n: l10n)
        }
    }

    static func text(_ problem: DowntimeEntry.Problem, l10n: Localization) -> String {
        switch problem {
        case .notANumber(let field): l10n(.errorNotANumber, label(field, l10n: l10n))
        case .outOfRange(let field, let min, let max):
            l10n(.errorOutOfRange, label(field, l10n: l10n), l10n.number(min), l10n.number(max))
        case .bloodPressureIncomplete: l10n(.errorBloodPressureIncomplete)
        case .systolicBelowDiastolic: l10n(.errorSystolicBelowDiastolic)
        case .nothingEntered: l10n(.errorNothingEntered)
        case .noteTooLong(let n): l10n(.errorNoteTooLong, String(n))
        }
    }

    static func form(
        patient: PatientSummary.Demographics, input: DowntimeEntry.Input, problems: [DowntimeEntry.Problem],
        frame: PageFrame
    ) -> HTML {
        let l10n = frame.l10n
        let errors: HTML =
            problems.isEmpty
            ? .empty
            : """
            <div class="error" role="alert">\(l10n(.entryErrors))<ul>\(problems.map { p -> HTML in "<li>\(text(p, l10n: l10n))</li>" })</ul></div>
            """
        func number(_ field: DowntimeEntry.Field) -> HTML {
            """
            <div><label for="\(field.rawValue)">\(label(field, l10n: l10n))</label>\
            <input id="\(field.rawValue)" name="\(field.rawValue)" type="text" inputmode="decimal" size="8" value="\(input[field])"></div>
            """
        }
        let action = WebURL.path("patients", patient.id, "entry")
        let content: HTML = """
            <h1>\(l10n(.titleWith, l10n(.entryTitle), patient.name))</h1>
            <p class="hint">\(l10n(.entryIntro))</p>
            <div class="actions"><a href="\(WebURL.path("patients", patient.id))">\(l10n(.navBack))</a></div>
            \(errors)
            <form method="post" action="\(action)">
            \(PageLayout.csrfField(frame.csrf))
            <label for="note">\(l10n(.entryNote))</label>
            <textarea id="note" name="note" rows="10">\(input[.note])</textarea>
            <h2>\(l10n(.entryVitals))</h2>
            <div class="fields">
            \(number(.weight))
            \(number(.height))
            \(number(.heartRate))
            \(number(.temperature))
            </div>
            <div class="fields">
            \(number(.systolic))
            \(number(.diastolic))
            </div>
            <div class="actions"><button type="submit">\(l10n(.entrySave))</button></div>
            </form>
            """
        return PageLayout.page(title: l10n(.entryTitle), frame: frame, content: content)
    }

    /// What was queued: each resource's kind and its outbox entry number.
    static func confirmation(
        patient: PatientSummary.Demographics, queued: [(kind: DowntimeEntry.Kind, seq: Int64)], frame: PageFrame
    ) -> HTML {
        let l10n = frame.l10n
        let numbers = queued.map { String($0.seq) }.joined(separator: ", ")
        let items = queued.map { q -> HTML in
            "<li>\(label(q.kind, l10n: l10n)) — #\(String(q.seq)) \(PageLayout.badge(.notSent, l10n: l10n))</li>"
        }
        let content: HTML = """
            <h1>\(l10n(.titleWith, l10n(.entryTitle), patient.name))</h1>
            <div class="notice" role="status"><p>\(l10n(.entryQueued))</p>
            <p id="entries">\(l10n(.entryEntryNumbers, numbers))</p></div>
            <ul>\(items)</ul>
            <div class="actions"><a class="button" href="\(WebURL.path("patients", patient.id))">\(l10n(.navBack))</a>
            <a class="button secondary" href="\(WebURL.path("patients", patient.id, "entry"))">\(l10n(.entryAnother))</a></div>
            """
        return PageLayout.page(title: l10n(.entryTitle), frame: frame, content: content)
    }
}
