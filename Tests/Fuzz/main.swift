// Coverage-guided fuzzing of the decoders that read untrusted input (#14): built only by
// `make fuzz` (EHR_SYNC_FUZZ=1 adds this target, with -sanitize=fuzzer). One binary, the
// decoder picked by EHR_SYNC_FUZZ_TARGET; a decoder may refuse its input with an error, never
// crash, hang or read out of bounds.
import Foundation
import SyncModel

let target = ProcessInfo.processInfo.environment["EHR_SYNC_FUZZ_TARGET"] ?? "json"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    switch target {
    case "json":
        // Untrusted JSON everywhere: the local API's bodies, the EHR's answers.
        if let value = try? JSONValue(data: data) { _ = value.data() }
    case "ndjson":
        // A line of an export file or a search page's resource: the slicer, the envelope, the outline.
        data.withUnsafeBytes { raw in
            do { _ = try JSONSlicer.identityAndReferences(ofRaw: raw) } catch {}
            do { _ = try ResourceOutline(json: raw) } catch {}
        }
        _ = try? ResourceEnvelope.parse(data)
    case "bundle":
        _ = try? BundlePage.parse(data)
    case "capability":
        _ = try? ServerCapabilities.parse(data)
    case "outcome":
        _ = OperationOutcomeText.summary(data)
        _ = OperationOutcomeText.withoutServerText(String(decoding: data, as: UTF8.self))
    case "search":
        // A local API query string, split and decoded as the server does.
        let text = String(decoding: data, as: UTF8.self)
        let pairs = text.split(separator: "&").map { part -> (String, String) in
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
            let value = kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
            return (key, value)
        }
        for type in ["Patient", "Observation"] { _ = try? SearchRequest.parse(type: type, query: pairs) }
    case "control":
        // A line on the control socket.
        if let request = try? JSONDecoder().decode(ControlRequest.self, from: data) { _ = request.command.name }
    case "config":
        _ = try? SyncConfiguration.parse(String(decoding: data, as: UTF8.self), file: "fuzz.toml")
    default:
        fatalError("unknown EHR_SYNC_FUZZ_TARGET \(target)")
    }
    return 0
}
