import ArgumentParser
import Foundation
import SyncModel

/// Sends one request to the daemon; on failure prints the daemon's reason and exits 1, or 3
/// when the daemon cannot be reached (monitoring convention).
func ask(_ command: ControlCommand, socket: SocketOptions) throws -> ControlResponse {
    let response: ControlResponse
    do {
        response = try ControlClient.send(ControlRequest(command, actor: operatorName()), socket: socket.socket)
    } catch {
        FileHandle.standardError.write(Data("syncctl: \(error)\n".utf8))
        throw ExitCode(3)
    }
    guard response.ok else {
        FileHandle.standardError.write(Data("syncctl: \(response.error ?? "the daemon refused")\n".utf8))
        throw ExitCode(1)
    }
    return response
}
