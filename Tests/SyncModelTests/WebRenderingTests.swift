import Foundation
import Testing

@testable import SyncModel
@testable import SyncServer

/// A small patient record, as `$everything` on the local view returns it.
enum WebFixture {
    static let hostileGiven = "<script>alert('x')</script>"
    static let hostileFamily = "O'Brien\"><img src=x onerror=alert(1)>"
    static let pendingTag = #"{"tag":[{"system":"https://ehr-sync.org/fhir/CodeSystem/sync-state","code":"pending"}]}"#

    static let resources: [String] = [
        #"""
        {"resourceType":"Patient","id":"p1","name":[{"use":"official","family":"\#(json(hostileFamily))","given":["\#(json(hostileGiven))"]}],
         "gender":"female","birthDate":"1988-05-05","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"288057512345678"}],
         "address":[{"line":["3 rue des Lilas"],"city":"Lyon","postalCode":"69003"}],"telecom":[{"system":"phone","value":"04 72 00 00 00"}]}
        """#,
        #"""
        {"resourceType":"AllergyIntolerance","id":"a1","meta":\#(pendingTag),"patient":{"reference":"Patient/p1"},
         "code":{"text":"Peanut"},"criticality":"high",
         "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
         "reaction":[{"manifestation":[{"text":"Anaphylaxis"}]}],"recordedDate":"2020-02-01"}
        """#,
        #"""
        {"resourceType":"AllergyIntolerance","id":"a2","patient":{"reference":"Patient/p1"},"code":{"text":"Penicillin"},
         "verificationStatus":{"coding":[{"code":"entered-in-error"}]}}
        """#,
        #"""
        {"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{"text":"Hypertension"},
         "clinicalStatus":{"coding":[{"code":"active"}]},"onsetDateTime":"2015-03-01T10:00:00+00:00"}
        """#,
        #"""
        {"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"},"code":{"text":"Resolved sprain"},
         "clinicalStatus":{"coding":[{"code":"resolved"}]}}
        """#,
        #"""
        {"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","subject":{"reference":"Patient/p1"},
         "medicationCodeableConcept":{"coding":[{"display":"Amlodipine 5 MG Oral Tablet"}]},
         "dosageInstruction":[{"text":"1 tablet daily"}],"authoredOn":"2024-01-10","requester":{"display":"Dr House"}}
        """#,
        #"""
        {"resourceType":"MedicationRequest","id":"m2","status":"active","intent":"order","subject":{"reference":"Patient/p1"},
         "medicationReference":{"reference":"Medication/med1"}}
        """#,
        #"""
        {"resourceType":"MedicationRequest","id":"m3","status":"stopped","intent":"order","subject":{"reference":"Patient/p1"},
         "medicationCodeableConcept":{"text":"Old stopped drug"}}
        """#,
        #"""
        {"resourceType":"Medication","id":"med1","code":{"coding":[{"display":"Metformin 500 MG"}]}}
        """#,
        #"""
        {"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},
         "type":[{"text":"General examination"}],"period":{"start":"2025-06-01T08:00:00Z"},
         "participant":[{"individual":{"display":"Dr House"}}],"serviceProvider":{"display":"Cabinet des Lilas"}}
        """#,
        #"""
        {"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p1"},
         "category":[{"coding":[{"code":"laboratory","display":"Laboratory"}]}],"code":{"text":"Glucose"},
         "effectiveDateTime":"2025-06-01T08:30:00Z","valueQuantity":{"value":7.2,"unit":"mmol/L"},
         "referenceRange":[{"low":{"value":3.9,"unit":"mmol/L"},"high":{"value":5.5,"unit":"mmol/L"}}]}
        """#,
        #"""
        {"resourceType":"Observation","id":"o2","status":"final","subject":{"reference":"Patient/p1"},
         "category":[{"coding":[{"code":"vital-signs","display":"Vital signs"}]}],"code":{"text":"Blood pressure"},
         "effectiveDateTime":"2025-06-01T08:10:00Z",
         "component":[{"code":{"text":"Systolic"},"valueQuantity":{"value":142,"unit":"mm[Hg]"}},
                      {"code":{"text":"Diastolic"},"valueQuantity":{"value":91,"unit":"mm[Hg]"}}]}
        """#,
        #"""
        {"resourceType":"Observation","id":"o3","status":"final","subject":{"reference":"Patient/p1"},"code":{"text":"Smoking status"},
         "effectiveDateTime":"2024-01-01T08:10:00Z","valueCodeableConcept":{"text":"Never smoked"}}
        """#,
        #"""
        {"resourceType":"Observation","id":"o4","status":"final","subject":{"reference":"Patient/p1"},
         "category":[{"coding":[{"code":"survey"}]}],"code":{"text":"Questionnaire item"},
         "effectiveDateTime":"2025-07-01T08:10:00Z","valueString":"A questionnaire answer"}
        """#,
        #"""
        {"resourceType":"Immunization","id":"i1","status":"completed","patient":{"reference":"Patient/p1"},
         "vaccineCode":{"text":"Influenza, seasonal"},"occurrenceDateTime":"2025-10-15T09:00:00Z"}
        """#,
        #"""
        {"resourceType":"DocumentReference","id":"d1","status":"current","subject":{"reference":"Patient/p1"},
         "type":{"text":"Progress note"},"date":"2025-06-01T09:00:00Z","author":[{"display":"Dr House"}],
         "content":[{"attachment":{"contentType":"text/plain; charset=utf-8","data":"\#(Data("Suivi tension. <b>bold</b> & co".utf8).base64EncodedString())"}}]}
        """#,
        #"""
        {"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p1"},
         "type":{"text":"Scanned letter"},"date":"2024-02-01",
         "content":[{"attachment":{"contentType":"application/pdf","url":"Binary/scan-1","title":"Courrier"}}]}
        """#,
    ]

    static func json(_ text: String) -> String {
        String(String(decoding: JSONValue.string(text).data(), as: UTF8.self).dropFirst().dropLast())
    }

    static var datas: [Data] { resources.map { Data($0.utf8) } }

    static func summary() throws -> PatientSummary {
        try #require(PatientSummary(patientID: "p1", resources: datas))
    }

    static let now = FHIRInstant.parse("2026-11-20T10:00:00Z")!

    static func frame(_ language: WebLanguage, banner: ViewerBanner? = nil) -> PageFrame {
        PageFrame(
            l10n: Localization(language, timeZone: TimeZone(identifier: "UTC")!),
            banner: banner
                ?? ViewerBanner(
                    state: "outage", failingSince: "2026-11-20T07:05:00Z", dataAsOf: "2026-11-20T07:00:00.000Z",
                    unsent: 3, conflicts: 0), user: "Dr <Léa> Martin", csrf: "CSRF-TOKEN-123", now: now)
    }
}

/// Pages rendered from values: escaping, both languages, the summary's sections.
@Suite struct WebRenderingTests {
    /// Markup that must never come out of record data.
    static func assertNoInjectedMarkup(_ html: HTML, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!html.text.contains("<script"), sourceLocation: sourceLocation)
        #expect(!html.text.contains("<img"), sourceLocation: sourceLocation)
        #expect(!html.text.contains("<b>"), sourceLocation: sourceLocation)
        #expect(!html.text.contains("onerror=alert(1)>"), sourceLocation: sourceLocation)
    }

    @Test func escapingCoversTextAndAttributes() {
        #expect(
            HTML.escape(#"<a href="x">Tom & 'Jerry'</a>"#)
                == "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;")
        #expect(HTML.escape("é\u{0}\u{7}x\ny") == "éx\ny")
        let name = "<script>"
        let cell: HTML = "<td title=\"\(name)\">\(name)</td>"
        #expect(cell.text == "<td title=\"&lt;script&gt;\">&lt;script&gt;</td>")
        let row: HTML = "<tr>\(cell)</tr>"
        #expect(row.text == "<tr><td title=\"&lt;script&gt;\">&lt;script&gt;</td></tr>")
        let missing: String? = nil
        let optional: HTML = "[\(missing)]"
        #expect(optional.text == "[]")
    }

    @Test func hostileNamesAreEscapedInSearchResults() throws {
        let row = try #require(PatientSearchPage.Row(json: WebFixture.datas[0]))
        let query = PatientSearchPage.Query(name: "\"><script>alert(1)</script>")
        let page = PatientSearchPage.render(
            query: query, outcome: .rows([row], total: 1), frame: WebFixture.frame(.en))
        Self.assertNoInjectedMarkup(page)
        #expect(page.text.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        #expect(page.text.contains("O&#39;Brien&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"))
        #expect(page.text.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""))
        #expect(page.text.contains("href=\"/patients/p1\""))
        #expect(page.text.contains("5 May 1988"))
        #expect(page.text.contains("288057512345678"))
        // The signed-in user's name is escaped too.
        #expect(page.text.contains("Dr &lt;Léa&gt; Martin"))
    }

    @Test func theSummaryHasEverySectionFromTheBundle() throws {
        let summary = try WebFixture.summary()
        #expect(summary.allergies.map(\.substance) == ["Peanut"])  // entered-in-error left out
        #expect(summary.problems.map(\.text) == ["Hypertension"])  // resolved left out
        #expect(Set(summary.medications.map(\.name)) == ["Amlodipine 5 MG Oral Tablet", "Metformin 500 MG"])
        #expect(summary.results.map(\.name) == ["Glucose", "Blood pressure", "Smoking status"])  // newest first
        #expect(summary.documents.map(\.id) == ["d1", "d2"])

        let page = PatientSummaryPage.render(summary, frame: WebFixture.frame(.en))
        let text = page.text
        Self.assertNoInjectedMarkup(page)
        for id in [
            "demographics", "allergies", "problems", "medications", "encounters", "results", "immunizations",
            "documents",
        ] {
            #expect(text.contains("<section id=\"\(id)\">"), "section \(id)")
        }
        for expected in [
            "Peanut", "Anaphylaxis", "Hypertension", "Amlodipine 5 MG Oral Tablet", "1 tablet daily",
            "Metformin 500 MG",
            "General examination", "Cabinet des Lilas", "Glucose", "7.2 mmol/L", "3.9–5.5 mmol/L",
            "Systolic: 142 mm[Hg]; Diastolic: 91 mm[Hg]", "Never smoked", "Influenza, seasonal", "Progress note",
            "Suivi tension. &lt;b&gt;bold&lt;/b&gt; &amp; co", "/patients/p1/documents/d2/attachment/0",
            "/patients/p1/documents/d1/attachment/0", "/patients/p1/print", "/patients/p1/entry", "1 Jun 2025 08:30",
            "38 years",
        ] {
            #expect(text.contains(expected), "\(expected)")
        }
        #expect(!text.contains("Resolved sprain"))
        #expect(!text.contains("Old stopped drug"))
        #expect(!text.contains("Penicillin"))
        #expect(!text.contains("A questionnaire answer"))  // survey answers are not results
        // The glucose is above its range.
        #expect(text.contains("<span class=\"flag\" title=\"high\">H</span>"))
        // The allergy entered locally carries the badge.
        #expect(text.contains("not yet sent to the EHR"))
        #expect(text.components(separatedBy: "class=\"badge pending\"").count - 1 == 1)
        // Every form carries the CSRF token (here: sign-out).
        #expect(text.contains("<input type=\"hidden\" name=\"csrf\" value=\"CSRF-TOKEN-123\">"))
    }

    @Test func theSummaryShowsTheMostRecentDocumentsAndSaysHowManyThereAre() throws {
        let documents = (1...25).map { n in
            #"""
            {"resourceType":"DocumentReference","id":"doc\#(n)","status":"current","subject":{"reference":"Patient/p1"},
             "type":{"text":"Note \#(n)"},"date":"2025-01-\#(String(format: "%02d", n))T09:00:00Z",
             "content":[{"attachment":{"contentType":"text/plain","data":"\#(Data("note \(n)".utf8).base64EncodedString())"}}]}
            """#
        }
        let resources = (WebFixture.resources.prefix(1) + documents).map { Data($0.utf8) }
        let summary = try #require(PatientSummary(patientID: "p1", resources: resources))
        #expect(summary.documents.count == 25)
        let text = PatientSummaryPage.render(summary, frame: WebFixture.frame(.en)).text
        #expect(text.contains("Note 25") && text.contains("Note 6"))
        #expect(!text.contains("Note 5<"), "older than the 20 most recent")
        #expect(text.contains("20 most recent of 25"))
    }

    @Test func theSummaryInFrench() throws {
        let page = PatientSummaryPage.render(try WebFixture.summary(), frame: WebFixture.frame(.fr)).text
        for expected in [
            "<html lang=\"fr\">", "Allergies et intolérances", "Problèmes actifs", "Traitements en cours",
            "Consultations récentes", "Résultats récents", "Vaccinations", "pas encore transmis au DME",
            "5 mai 1988", "7,2 mmol/L", "3,9–5,5 mmol/L", "Se déconnecter", "Connecté : Dr &lt;Léa&gt; Martin",
            "1 juin 2025 08:30", "38 ans",
        ] {
            #expect(page.contains(expected), "\(expected)")
        }
        #expect(!page.contains("not yet sent"))
        #expect(!page.contains("Sign out"))
    }

    @Test func theBannerSaysWhereTheEHRStandsAndHowOldTheDataIs() {
        let outage = ViewerBanner(
            state: "outage", failingSince: "2026-11-20T07:05:00Z", dataAsOf: "2026-11-20T07:00:00.000Z", unsent: 3,
            conflicts: 1)
        let utc = TimeZone(identifier: "UTC")!
        let fr = PageLayout.bannerText(outage, l10n: Localization(.fr, timeZone: utc))
        #expect(fr.headline == "DME injoignable depuis 20 nov. 2026 07:05 ; données au 20 nov. 2026 07:00")
        #expect(fr.detail == "Modifications locales pas encore transmises au DME : 3 · conflits à examiner : 1")
        let en = PageLayout.bannerText(outage, l10n: Localization(.en, timeZone: utc))
        #expect(en.headline == "EHR unreachable since 20 Nov 2026 07:05; data as of 20 Nov 2026 07:00")
        #expect(en.detail == "Local changes not yet sent to the EHR: 3 · conflicts to review: 1")
        let online = ViewerBanner(state: "online", failingSince: nil, dataAsOf: nil, unsent: 0, conflicts: 0)
        let calm = PageLayout.bannerText(online, l10n: Localization(.en, timeZone: utc))
        #expect(calm.headline == "EHR online; data age unknown")
        #expect(calm.detail == nil)
        let paris = Localization(.fr, timeZone: TimeZone(identifier: "Europe/Paris")!)
        #expect(
            PageLayout.bannerText(outage, l10n: paris).headline.hasPrefix("DME injoignable depuis 20 nov. 2026 08:05"))
        let page = PageLayout.page(title: "t", frame: WebFixture.frame(.en), content: "<p>x</p>").text
        #expect(page.contains("class=\"banner state-outage\""))
        #expect(page.contains("Local changes not yet sent to the EHR: 3"))
    }

    @Test func datesAreReadable() {
        let en = Localization(.en, timeZone: TimeZone(identifier: "UTC")!)
        let fr = Localization(.fr, timeZone: TimeZone(identifier: "UTC")!)
        #expect(en.date("1988-05-05") == "5 May 1988")
        #expect(fr.date("1988-05-05") == "5 mai 1988")
        #expect(en.date("1988-05") == "May 1988")
        #expect(fr.date("1988") == "1988")
        #expect(en.date("2006-06-29T16:38:33.762+02:00") == "29 Jun 2006 14:38")
        #expect(fr.date("2006-08-29T16:38:33Z") == "29 août 2006 16:38")
        #expect(en.date("not a date") == "not a date")
        #expect(en.date(nil) == "")
        #expect(Localization.age(birthDate: "1988-05-05", now: WebFixture.now) == 38)
        #expect(Localization.age(birthDate: "1988-12-05", now: WebFixture.now) == 37)
    }

    @Test func everyStringExistsInBothLanguagesWithTheSamePlaceholders() {
        func placeholders(_ text: String) -> Set<String> {
            Set((1...4).map { "%\($0)" }.filter { text.contains($0) })
        }
        for key in Localization.Key.allCases {
            let pair = Localization.table(key)
            #expect(!pair.en.isEmpty && !pair.fr.isEmpty, "\(key)")
            #expect(placeholders(pair.en) == placeholders(pair.fr), "\(key)")
        }
    }

    @Test func placeholdersAreFilledOnceWithoutReadingTheArguments() {
        #expect(Localization.substitute("%1 : %2", ["a%2", "b%1"]) == "a%2 : b%1")
        #expect(Localization.substitute("100% %1", ["x"]) == "100% x")
        #expect(Localization.substitute("%3", ["x"]) == "%3")
        #expect(Localization(.fr)(.titleWith, "Saisie", "Mme %1") == "Saisie : Mme %1")
    }

    @Test func theLoginPageShowsNoDataAndOneGenericMessage() {
        let l10n = Localization(.en)
        let page = LoginPage.render(l10n: l10n, message: .failed, name: "<script>x").text
        #expect(page.contains("Sign-in failed: wrong account name or password."))
        #expect(page.contains("value=\"&lt;script&gt;x\""))
        #expect(!page.contains("<script"))
        #expect(page.contains("name=\"password\" type=\"password\""))
        #expect(page.contains("action=\"/login\""))
        let fr = LoginPage.render(l10n: Localization(.fr), message: .throttled(seconds: 30)).text
        #expect(fr.contains("Réessayez dans 30 secondes"))
    }

    @Test func thePrintViewHasNoNavigationAndSaysWhoPrintedIt() throws {
        let page = PrintPages.summary(try WebFixture.summary(), frame: WebFixture.frame(.en)).text
        #expect(!page.contains("<nav"))
        #expect(!page.contains("action=\"/logout\""))
        #expect(page.contains("@media print"))
        #expect(page.contains("Printed by Dr &lt;Léa&gt; Martin on 20 Nov 2026 10:00"))
        #expect(page.contains("EHR unreachable since"))
        for id in ["allergies", "problems", "medications"] { #expect(page.contains("<section id=\"\(id)\">")) }
        Self.assertNoInjectedMarkup(HTML(raw: page))
    }

    @Test func theDaySheetHasAPagePerPatient() throws {
        let entries: [PrintPages.DaySheetEntry] = [.patient(try WebFixture.summary()), .missing("nope")]
        let page = PrintPages.daySheet(entries, frame: WebFixture.frame(.fr)).text
        #expect(page.components(separatedBy: "<div class=\"sheet\">").count - 1 == 2)
        #expect(page.contains("Peanut") && page.contains("Hypertension") && page.contains("Metformin 500 MG"))
        #expect(!page.contains("Glucose"))  // allergies, problems and medications only
        #expect(page.contains("Patient absent de la copie locale."))
        #expect(page.contains("Feuille du jour"))
        Self.assertNoInjectedMarkup(HTML(raw: page))
        let empty = PrintPages.daySheet([], frame: WebFixture.frame(.en)).text
        #expect(empty.contains("No patient selected"))
    }

    @Test func theEntryFormCarriesTheCSRFTokenAndEchoesValuesEscaped() throws {
        let summary = try WebFixture.summary()
        let input = DowntimeEntry.Input([.note: "</textarea><script>alert(1)</script>", .weight: "\"><b>"])
        let page = DowntimeEntryPage.form(
            patient: summary.patient, input: input, problems: [.notANumber(.weight), .bloodPressureIncomplete],
            frame: WebFixture.frame(.fr)
        ).text
        // Two forms carry the token: the entry and sign-out.
        #expect(page.components(separatedBy: "name=\"csrf\" value=\"CSRF-TOKEN-123\"").count - 1 == 2)
        #expect(page.contains("method=\"post\" action=\"/patients/p1/entry\""))
        #expect(page.contains("&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;</textarea>"))
        #expect(page.contains("Poids (kg) : ce n’est pas un nombre"))
        #expect(page.contains("Tension artérielle : indiquez systolique et diastolique"))
        Self.assertNoInjectedMarkup(HTML(raw: page))
        let done = DowntimeEntryPage.confirmation(
            patient: summary.patient, queued: [(.note, 12), (.weight, 13)], frame: WebFixture.frame(.en)
        ).text
        #expect(done.contains("Outbox entries: 12, 13"))
        #expect(done.contains("not yet sent to the EHR"))
    }

    @Test func attachmentsAreFoundOnlyForTheirPatient() {
        let datas = WebFixture.datas
        #expect(
            PatientSummary.attachment(documentID: "d1", index: 0, patientID: "p1", resources: datas)
                == .inline(Data("Suivi tension. <b>bold</b> & co".utf8), contentType: "text/plain; charset=utf-8"))
        #expect(
            PatientSummary.attachment(documentID: "d2", index: 0, patientID: "p1", resources: datas)
                == .url("Binary/scan-1", contentType: "application/pdf"))
        #expect(PatientSummary.attachment(documentID: "d2", index: 0, patientID: "p2", resources: datas) == nil)
        #expect(PatientSummary.attachment(documentID: "d2", index: 1, patientID: "p1", resources: datas) == nil)
        // A Binary served as FHIR JSON instead of its bytes is unwrapped.
        let pdf = Data("%PDF-1.4".utf8)
        let binary = Data(
            #"{"resourceType":"Binary","contentType":"application/pdf","data":"\#(pdf.base64EncodedString())"}"#.utf8)
        #expect(PatientSummary.nativeContent(binary, contentType: nil) == (pdf, "application/pdf"))
        #expect(PatientSummary.nativeContent(pdf, contentType: "application/pdf") == (pdf, "application/pdf"))
        #expect(WebResponse.safeContentType("text/html\r\nSet-Cookie: x") == "application/octet-stream")
        #expect(WebResponse.filename(index: 0, contentType: "application/pdf") == "document-1.pdf")
    }
}
