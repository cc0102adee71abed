import Foundation
import SyncModel

#if canImport(Glibc)
    import Glibc
#endif

/// The client side of the control socket: one request line, one response line, plain
/// POSIX sockets (no HTTP stack needed).
enum ControlClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func send(_ request: ControlRequest, socket path: String, timeout: Int = 30) throws -> ControlResponse {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "cannot create a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            throw Failure(
                description: "cannot reach ehr-syncd at \(path): \(reason). Is the service running "
                    + "(systemctl status ehr-syncd)? Are you in the ehr-sync-staff group?")
        }
        var data = try JSONEncoder().encode(request)
        data.append(0x0A)
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw Failure(description: "cannot send the request to \(path)") }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 { throw Failure(description: "no answer from ehr-syncd at \(path) within \(timeout) s") }
            if n == 0 { break }
            response.append(contentsOf: buffer[0..<n])
            if buffer[0..<n].contains(0x0A) { break }
        }
        guard let decoded = try? JSONDecoder().decode(ControlResponse.self, from: response) else {
            throw Failure(description: "unreadable answer from ehr-syncd at \(path)")
        }
        return decoded
    }
}
