public import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// The viewer's two languages.
public enum WebLanguage: String, Sendable, CaseIterable {
    case en, fr

    /// A staff account's language (`fr` or `en`); English for anything else.
    public init(account language: String) {
        self = language.lowercased().hasPrefix("fr") ? .fr : .en
    }

    /// The first of `fr`/`en` in an `Accept-Language` header (for the login page, before
    /// anyone is signed in); English otherwise.
    public init(acceptLanguage header: String?) {
        for part in (header ?? "").split(separator: ",") {
            let tag = part.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            if let tag, let language = Self.allCases.first(where: { tag.hasPrefix($0.rawValue) }) {
                self = language
                return
            }
        }
        self = .en
    }
}

/// Every string the viewer shows, in English and French, and readable dates. Pure value:
/// the time zone is given (the practice machine's in the daemon, UTC in tests).
public struct Localization: Sendable {
    public var language: WebLanguage
    public var timeZone: TimeZone

    public init(_ language: WebLanguage, timeZone: TimeZone = .current) {
        self.language = language
        self.timeZone = timeZone
    }

    /// The text of `key`, with `%1`, `%2`… replaced by `arguments`.
    public func callAsFunction(_ key: Key, _ arguments: String...) -> String {
        let pair = Self.table(key)
        return Self.substitute(language == .fr ? pair.fr : pair.en, arguments)
    }

    /// `%1`…`%9` replaced in one pass (an argument's own text is never substituted).
    static func substitute(_ template: String, _ arguments: [String]) -> String {
        var out = ""
        var rest = Substring(template)
        while let percent = rest.firstIndex(of: "%") {
            out += rest[..<percent]
            let next = rest.index(after: percent)
            if next < rest.endIndex, let n = rest[next].wholeNumberValue, n >= 1, n <= arguments.count {
                out += arguments[n - 1]
                rest = rest[rest.index(after: next)...]
            } else {
                out += "%"
                rest = rest[next...]
            }
        }
        return out + rest
    }

    public enum Key: String, Sendable, CaseIterable {
        case appName, lang, titleWith
        // Sign-in
        case signInTitle, accountName, password, signIn, signOut, loginFailed, loginThrottled, loginExpired, signedInAs
        case sessionRequired
        // Banner
        case stateOnline, stateDegraded, stateOutage, stateOutageSince, stateRecovering, statePaused, stateStarting
        case stateInitialSync, bannerLine, dataAsOf, dataAsOfUnknown, unsentChanges, conflictsToReview
        // Navigation
        case navSearch, navDaySheet, navPrint, navEntry, navSummary, navBack
        // Search
        case searchTitle, searchName, searchBirthDate, searchIdentifier, searchButton, searchHint, searchNoResults
        case searchResults, searchInvalid, searchMore, addToDaySheet, printDaySheet
        // Patient
        case name, birthDate, gender, identifier, address, phone, deceased, genderMale, genderFemale
        case genderOther, genderUnknown, age
        // Sections
        case demographics, allergies, problems, medications, encounters, results, immunizations, documents
        case noneRecorded, shownOf
        case notSent, inConflict, parkedByEHR
        // Columns
        case substance, status, criticality, reactions, recorded, onset, dosage, prescribed, prescriber, date
        case type, reason, practitioner, location, value, referenceRange, interpretation, vaccine, author
        case problem, medication, test, category, high, low, download, attachmentNotStored, noteText
        // Print
        case printTitle, printedBy, daySheetTitle, daySheetEmpty, patientNotFound, printButton
        // Entry
        case entryTitle, entryIntro, entryNote, entryVitals, weight, height, heartRate, systolic, diastolic
        case bloodPressure, temperature, entrySave, entryErrors, entryQueued, entryEntryNumbers, entryAnother
        case errorNotANumber, errorOutOfRange, errorBloodPressureIncomplete, errorSystolicBelowDiastolic
        case errorNothingEntered, errorNoteTooLong, progressNote, vitalSigns
        // Errors
        case forbidden, notFound, auditFailed, readFailed, queueFailed, badRequest, clinicalOnly, clinicalHidden
    }

    static func table(_ key: Key) -> (en: String, fr: String) {
        switch key {
        case .appName: ("Practice records (local copy)", "Dossiers du cabinet (copie locale)")
        case .lang: ("en", "fr")
        case .titleWith: ("%1: %2", "%1 : %2")
        case .signInTitle: ("Sign in", "Connexion")
        case .accountName: ("Account name", "Identifiant")
        case .password: ("Password", "Mot de passe")
        case .signIn: ("Sign in", "Se connecter")
        case .signOut: ("Sign out", "Se déconnecter")
        case .loginFailed:
            (
                "Sign-in failed: wrong account name or password.",
                "Échec de la connexion : identifiant ou mot de passe incorrect."
            )
        case .loginThrottled:
            (
                "Too many failed attempts. Try again in %1 seconds.",
                "Trop de tentatives échouées. Réessayez dans %1 secondes."
            )
        case .loginExpired:
            (
                "The sign-in form has expired. Please sign in again.",
                "Le formulaire de connexion a expiré. Veuillez vous reconnecter."
            )
        case .signedInAs: ("Signed in as %1", "Connecté : %1")
        case .sessionRequired: ("Sign in first.", "Connectez-vous d’abord.")
        case .stateOnline: ("EHR online", "DME en ligne")
        case .stateDegraded: ("EHR answering with errors since %1", "DME en difficulté depuis %1")
        case .stateOutage: ("EHR unreachable", "DME injoignable")
        case .stateOutageSince: ("EHR unreachable since %1", "DME injoignable depuis %1")
        case .stateRecovering: ("EHR back, catching up", "DME de retour, rattrapage en cours")
        case .statePaused: ("Synchronisation paused", "Synchronisation suspendue")
        case .stateStarting: ("Starting", "Démarrage")
        case .stateInitialSync: ("First copy in progress (incomplete)", "Première copie en cours (incomplète)")
        case .bannerLine: ("%1; %2", "%1 ; %2")
        case .dataAsOf: ("data as of %1", "données au %1")
        case .dataAsOfUnknown: ("data age unknown", "âge des données inconnu")
        case .unsentChanges:
            ("Local changes not yet sent to the EHR: %1", "Modifications locales pas encore transmises au DME : %1")
        case .conflictsToReview: ("conflicts to review: %1", "conflits à examiner : %1")
        case .navSearch: ("Patients", "Patients")
        case .navDaySheet: ("Day sheet", "Feuille du jour")
        case .navPrint: ("Print", "Imprimer")
        case .navEntry: ("Downtime entry", "Saisie hors ligne")
        case .navSummary: ("Summary", "Synthèse")
        case .navBack: ("Back to the summary", "Retour à la synthèse")
        case .searchTitle: ("Find a patient", "Rechercher un patient")
        case .searchName: ("Name", "Nom")
        case .searchBirthDate: ("Birth date", "Date de naissance")
        case .searchIdentifier: ("Identifier", "Identifiant patient")
        case .searchButton: ("Search", "Rechercher")
        case .searchHint:
            (
                "Name, birth date (YYYY-MM-DD) or identifier; any combination.",
                "Nom, date de naissance (AAAA-MM-JJ) ou identifiant ; au choix, combinables."
            )
        case .searchNoResults: ("No patient found.", "Aucun patient trouvé.")
        case .searchResults: ("Patients found: %1", "Patients trouvés : %1")
        case .searchInvalid: ("The search was not understood: %1", "Recherche non comprise : %1")
        case .searchMore:
            (
                "Only the first %1 are shown; refine the search.",
                "Seuls les %1 premiers sont affichés ; affinez la recherche."
            )
        case .addToDaySheet: ("Day sheet", "Feuille du jour")
        case .printDaySheet:
            ("Print the day sheet of the selected patients", "Imprimer la feuille du jour des patients cochés")
        case .name: ("Name", "Nom")
        case .birthDate: ("Birth date", "Date de naissance")
        case .gender: ("Gender", "Sexe")
        case .identifier: ("Identifier", "Identifiant")
        case .address: ("Address", "Adresse")
        case .phone: ("Phone", "Téléphone")
        case .deceased: ("Deceased", "Décédé(e)")
        case .genderMale: ("male", "homme")
        case .genderFemale: ("female", "femme")
        case .genderOther: ("other", "autre")
        case .genderUnknown: ("unknown", "inconnu")
        case .age: ("%1 years", "%1 ans")
        case .demographics: ("Patient", "Patient")
        case .allergies: ("Allergies and intolerances", "Allergies et intolérances")
        case .problems: ("Active problems", "Problèmes actifs")
        case .medications: ("Current medications", "Traitements en cours")
        case .encounters: ("Recent encounters", "Consultations récentes")
        case .results: ("Recent results", "Résultats récents")
        case .immunizations: ("Immunizations", "Vaccinations")
        case .documents: ("Documents", "Documents")
        case .noneRecorded: ("None recorded.", "Aucun(e) enregistré(e).")
        case .shownOf: ("%1 most recent of %2", "%1 plus récents sur %2")
        case .notSent: ("not yet sent to the EHR", "pas encore transmis au DME")
        case .inConflict: ("in conflict with the EHR, awaiting review", "en conflit avec le DME, à examiner")
        case .parkedByEHR: ("refused by the EHR, awaiting correction", "refusé par le DME, à corriger")
        case .substance: ("Substance", "Substance")
        case .status: ("Status", "Statut")
        case .criticality: ("Criticality", "Gravité")
        case .reactions: ("Reactions", "Réactions")
        case .recorded: ("Recorded", "Enregistré le")
        case .onset: ("Since", "Depuis")
        case .dosage: ("Dosage", "Posologie")
        case .prescribed: ("Prescribed", "Prescrit le")
        case .prescriber: ("Prescriber", "Prescripteur")
        case .date: ("Date", "Date")
        case .type: ("Type", "Type")
        case .reason: ("Reason", "Motif")
        case .practitioner: ("Practitioner", "Praticien")
        case .location: ("Place", "Lieu")
        case .value: ("Value", "Valeur")
        case .referenceRange: ("Reference range", "Valeurs de référence")
        case .interpretation: ("Flag", "Interprétation")
        case .vaccine: ("Vaccine", "Vaccin")
        case .author: ("Author", "Auteur")
        case .problem: ("Problem", "Problème")
        case .medication: ("Medication", "Médicament")
        case .test: ("Test", "Examen")
        case .category: ("Category", "Catégorie")
        case .high: ("high", "élevé")
        case .low: ("low", "bas")
        case .download: ("Download", "Télécharger")
        case .attachmentNotStored: ("not in the local copy", "absent de la copie locale")
        case .noteText: ("Read the note", "Lire la note")
        case .printTitle: ("Patient summary", "Synthèse du dossier")
        case .printedBy: ("Printed by %1 on %2", "Imprimé par %1 le %2")
        case .daySheetTitle: ("Day sheet", "Feuille du jour")
        case .daySheetEmpty:
            (
                "No patient selected: tick patients in the search results.",
                "Aucun patient choisi : cochez des patients dans les résultats de recherche."
            )
        case .patientNotFound: ("No such patient in the local copy.", "Patient absent de la copie locale.")
        case .printButton:
            ("Print this page with the browser (Ctrl+P).", "Imprimez cette page avec le navigateur (Ctrl+P).")
        case .entryTitle: ("Downtime entry", "Saisie pendant l’indisponibilité")
        case .entryIntro:
            (
                "What you enter here is kept in the local copy and sent to the EHR when it answers again.",
                "Ce que vous saisissez ici est conservé dans la copie locale et transmis au DME dès qu’il répond."
            )
        case .entryNote: ("Consultation note", "Note de consultation")
        case .entryVitals: ("Vital signs", "Constantes")
        case .weight: ("Weight (kg)", "Poids (kg)")
        case .height: ("Height (cm)", "Taille (cm)")
        case .heartRate: ("Heart rate (/min)", "Fréquence cardiaque (/min)")
        case .systolic: ("Systolic (mmHg)", "Systolique (mmHg)")
        case .diastolic: ("Diastolic (mmHg)", "Diastolique (mmHg)")
        case .bloodPressure: ("Blood pressure", "Tension artérielle")
        case .temperature: ("Temperature (°C)", "Température (°C)")
        case .entrySave: ("Save", "Enregistrer")
        case .entryErrors: ("Nothing was saved. Please correct:", "Rien n’a été enregistré. À corriger :")
        case .entryQueued: ("Saved locally; will be sent to the EHR.", "Enregistré localement ; sera transmis au DME.")
        case .entryEntryNumbers: ("Outbox entries: %1", "Entrées de la file d’envoi : %1")
        case .entryAnother: ("New entry", "Nouvelle saisie")
        case .errorNotANumber: ("%1: not a number", "%1 : ce n’est pas un nombre")
        case .errorOutOfRange: ("%1: expected between %2 and %3", "%1 : attendu entre %2 et %3")
        case .errorBloodPressureIncomplete:
            (
                "Blood pressure: give both systolic and diastolic",
                "Tension artérielle : indiquez systolique et diastolique"
            )
        case .errorSystolicBelowDiastolic:
            (
                "Blood pressure: systolic must be above diastolic",
                "Tension artérielle : la systolique doit dépasser la diastolique"
            )
        case .errorNothingEntered:
            ("Enter a note or at least one measurement.", "Saisissez une note ou au moins une mesure.")
        case .errorNoteTooLong: ("The note is longer than %1 characters.", "La note dépasse %1 caractères.")
        case .progressNote: ("Progress note", "Note d’évolution")
        case .vitalSigns: ("Vital signs", "Constantes")
        case .forbidden:
            (
                "This form has expired or did not come from this viewer; nothing was saved. Reload the page and try again.",
                "Ce formulaire a expiré ou ne vient pas de cette application ; rien n’a été enregistré. Rechargez la page et recommencez."
            )
        case .clinicalOnly:
            (
                "This page holds clinical content, which reception accounts do not see.",
                "Cette page contient des données cliniques, que les comptes d’accueil ne voient pas."
            )
        case .clinicalHidden:
            (
                "Clinical content is not shown to reception accounts.",
                "Les données cliniques ne sont pas affichées pour les comptes d’accueil."
            )
        case .notFound: ("Not found.", "Introuvable.")
        case .auditFailed:
            (
                "The access could not be recorded in the audit trail, so the data is not shown.",
                "L’accès n’a pas pu être enregistré dans le journal d’audit : les données ne sont pas affichées."
            )
        case .readFailed: ("The local copy could not be read.", "La copie locale n’a pas pu être lue.")
        case .queueFailed: ("The entry could not be saved: %1", "La saisie n’a pas pu être enregistrée : %1")
        case .badRequest: ("The request was not understood.", "Requête non comprise.")
        }
    }

    // MARK: Dates

    static let months: [WebLanguage: [String]] = [
        .en: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        .fr: ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."],
    ]

    /// A FHIR `date`, `dateTime` or `instant` as people read it: `5 May 1988`, `mai 1988`,
    /// `29 juin 2006 18:38` (times in ``timeZone``). Text that is not a date is returned as it is.
    public func date(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "" }
        let parts = text.prefix(10).split(separator: "-", omittingEmptySubsequences: false)
        guard let year = parts.first.flatMap({ Int($0) }), parts[0].count == 4 else { return text }
        let monthNames = Self.months[language] ?? []
        if text.count > 10, let seconds = FHIRInstant.parse(text) {
            let local = Int(seconds.rounded(.down)) + timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: seconds))
            let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
            let rest = local - days * 86_400
            let (y, m, d) = FHIRInstant.civilFromDays(days)
            let time = String(format: "%02d:%02d", rest / 3600, rest % 3600 / 60)
            return "\(d) \(monthNames[m - 1]) \(y) \(time)"
        }
        switch parts.count {
        case 1: return String(year)
        case 2:
            guard let m = Int(parts[1]), (1...12).contains(m) else { return text }
            return "\(monthNames[m - 1]) \(year)"
        default:
            guard let m = Int(parts[1]), (1...12).contains(m), let d = Int(parts[2]), (1...31).contains(d) else {
                return text
            }
            return "\(d) \(monthNames[m - 1]) \(year)"
        }
    }

    /// Seconds since 1970 as a readable local date and time.
    public func instant(_ seconds: Double) -> String {
        date(FHIRInstant.format(seconds))
    }

    /// Full years between a FHIR birth date and `now`; nil when the date is incomplete.
    public static func age(birthDate: String, now: Double) -> Int? {
        let parts = birthDate.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
        let today = FHIRInstant.format(now).prefix(10).split(separator: "-").compactMap { Int($0) }
        guard today.count == 3 else { return nil }
        var years = today[0] - y
        if (today[1], today[2]) < (m, d) { years -= 1 }
        return years >= 0 ? years : nil
    }

    /// A decimal as typed in this language (`37,5` in French).
    public func number(_ text: String) -> String {
        language == .fr ? text.replacingOccurrences(of: ".", with: ",") : text
    }

    public func gender(_ code: String?) -> String {
        switch code {
        case "male": self(.genderMale)
        case "female": self(.genderFemale)
        case "other": self(.genderOther)
        case nil: ""
        default: self(.genderUnknown)
        }
    }
}
