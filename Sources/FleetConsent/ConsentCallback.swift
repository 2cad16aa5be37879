import Foundation
import Hummingbird
import Logging

/// What the owner's browser brought back to the redirect URI.
public enum ConsentCallbackResult: Sendable, Hashable {
    /// The authorization code and the `state` it came with.
    case code(String, state: String?)
    /// The consent page's refusal (`error`, `error_description`), e.g. `access_denied`.
    case refused(String)
}

/// The loopback listener of `fleet-telemetry consent url --listen`: answers the one redirect of
/// the owner's browser (`GET PATH?code=…&state=…`) with a short page and hands the code over.
public enum ConsentCallback {
    /// Listens on `host:port` until the redirect to `path` arrives (other paths get 404), or
    /// `timeout` passes; then stops.
    ///
    /// - Parameters:
    ///   - expectedState: The `state` of the authorization waited for: a request with another
    ///     (or none) is answered 400 and does not end the wait; `nil` takes the first redirect.
    ///   - onListening: Called with the bound port once connections are accepted.
    /// - Returns: The redirect's result, or `nil` after `timeout`.
    /// - Throws: When the address cannot be bound.
    public static func wait(
        host: String, port: Int, path: String, timeout: Duration, expectedState: String? = nil, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> ConsentCallbackResult? {
        let (results, continuation) = AsyncStream.makeStream(of: ConsentCallbackResult.self)
        let router = Router()
        router.get(RouterPath(path.isEmpty ? "/" : path)) { request, _ -> Response in
            var fields: [String: String] = [:]
            for (name, value) in request.uri.queryParameters { fields[String(name)] = String(value) }
            let result: ConsentCallbackResult
            let page: String
            // Only the redirect of this authorization ends the wait: a reload, a prefetch or a
            // stray request with another state is answered and ignored.
            if let expectedState, fields["state"] != expectedState {
                return Response(
                    status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "not the redirect fleet-telemetry waits for\n")))
            }
            if let code = fields["code"], !code.isEmpty {
                result = .code(code, state: fields["state"])
                page = "Access granted. fleet-telemetry is finishing the connection; you can close this page."
            } else {
                let reason = [fields["error"], fields["error_description"]].compactMap { $0 }.joined(separator: ": ")
                result = .refused(reason.isEmpty ? "the redirect carried no code" : reason)
                page = "No access was granted (\(reason.isEmpty ? "no code" : reason))."
            }
            continuation.yield(result)
            let escaped = page.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
            return Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: "<!doctype html><title>fleet-telemetry</title><p>\(escaped)</p>")))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "fleet-telemetry"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: logger)
        return try await withThrowingTaskGroup(of: ConsentCallbackResult?.self) { group in
            group.addTask {
                try await app.run()
                return nil
            }
            group.addTask {
                for await result in results {
                    // Time for the page to reach the browser before the listener stops.
                    try? await Task.sleep(for: .milliseconds(300))
                    return result
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            // The first to finish: the redirect, the timeout, or the server failing to bind.
            let first = try await group.next() ?? nil
            continuation.finish()
            return first
        }
    }
}
