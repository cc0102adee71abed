public import Foundation

/// One complete answer of a FHIR server: status, headers (names lower-cased) and body.
public struct FHIRResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The server's clock from the `Date` header.
    public var serverDate: Double? { headers["date"].flatMap(HTTPDate.parse) }
}
