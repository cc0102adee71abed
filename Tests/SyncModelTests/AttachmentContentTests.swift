import Foundation
import SyncModel
import Testing

@Suite struct AttachmentContentTests {
    @Test func asksForTheDeclaredTypeFirstThenABinaryResource() {
        #expect(
            AttachmentContent.accept(contentType: "application/pdf")
                == "application/pdf, application/fhir+json;q=0.5, */*;q=0.1")
        #expect(AttachmentContent.accept(contentType: nil) == "*/*")
        #expect(AttachmentContent.accept(contentType: "  ") == "*/*")
        // A value that would forge another header or list is not sent.
        #expect(AttachmentContent.accept(contentType: "text/plain\r\nX-Evil: 1") == "*/*")
        #expect(AttachmentContent.accept(contentType: "application/fhir+json") == "application/fhir+json")
    }

    @Test func rawBytesAreKeptAsTheyAre() {
        let pdf = Data("%PDF-1.4 ...".utf8)
        #expect(
            AttachmentContent.bytes(
                body: pdf, responseContentType: "application/pdf", declaredContentType: "application/pdf")
                == pdf)
        #expect(AttachmentContent.bytes(body: pdf, responseContentType: nil, declaredContentType: nil) == pdf)
    }

    @Test func aBinaryResourceIsUnwrapped() {
        let text = Data("Compte rendu".utf8)
        let binary = Data(
            #"{"resourceType":"Binary","id":"b1","contentType":"text/plain","data":"\#(text.base64EncodedString())"}"#
                .utf8)
        #expect(
            AttachmentContent.bytes(
                body: binary, responseContentType: "application/fhir+json; charset=utf-8",
                declaredContentType: "text/plain") == text)
        // A Binary without data is empty; invalid base64 is no attachment at all.
        let empty = Data(#"{"resourceType":"Binary","contentType":"text/plain"}"#.utf8)
        #expect(
            AttachmentContent.bytes(body: empty, responseContentType: "application/fhir+json", declaredContentType: nil)
                == Data())
        let broken = Data(#"{"resourceType":"Binary","data":"!!!"}"#.utf8)
        #expect(
            AttachmentContent.bytes(
                body: broken, responseContentType: "application/fhir+json", declaredContentType: nil)
                == nil)
    }

    @Test func anAttachmentThatIsItselfFHIRJSONIsNotUnwrapped() {
        let bundle = Data(#"{"resourceType":"Binary","data":"AA=="}"#.utf8)
        #expect(
            AttachmentContent.bytes(
                body: bundle, responseContentType: "application/fhir+json",
                declaredContentType: "application/fhir+json") == bundle)
    }
}
