import Crypto
import Foundation
import Testing

@testable import SyncModel
@testable import SyncStore

/// Blind indexes come from one prepared HMAC that is copied per call: every call must give
/// what a freshly keyed HMAC gives, whatever came before.
@Suite struct KeyRingTests {
    @Test func blindIndexesAreHMACsOfTypeAndIDWhateverCameBefore() {
        let ring = KeyRing(dataKey: SymmetricKey(size: .bits256), replicaID: Data("replica".utf8))
        func fresh(_ text: String) -> Data {
            Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: ring.blinding).prefix(16))
        }
        let ids = ["a", "b", "a", "0d85458d-c590-529f-edef-036af8c2d110", String(repeating: "x", count: 64), "a"]
        for id in ids {
            #expect(ring.blind(type: "Patient", id: id) == fresh("Patient/\(id)"))
            #expect(ring.blind(type: "Observation", id: id) == fresh("Observation/\(id)"))
        }
        #expect(ring.blind(type: "Patient", id: "a") != ring.blind(type: "Patient", id: "b"))
        #expect(ring.blind(type: "Patient", id: "a").count == 16)
    }

    /// The associated data of every stored body: its bytes must never change, or no record
    /// stored before would open.
    @Test func aRowsAssociatedDataIsPinned() {
        let bid = Data([0xAB, 0x00, 0x7C])
        #expect(
            ResourceStore.context(type: "Observation", bid: bid, versionId: "12", deleted: false)
                == Data("r1|Observation|".utf8) + bid + Data("|12|0".utf8))
        #expect(
            ResourceStore.context(type: "Patient", bid: bid, versionId: nil, deleted: true)
                == Data("r1|Patient|".utf8) + bid + Data("||1".utf8))
    }
}
