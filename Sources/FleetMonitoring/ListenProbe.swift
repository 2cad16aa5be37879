import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Checks before the daemon starts that the metrics endpoint's address can be listened on, so
/// that a port in use or an unknown host is one clear line at startup, not an error of the
/// running service.
public enum ListenProbe {
    /// `nil` when `host:port` can be bound now (the socket is closed again), else why not.
    public static func problem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let first = found else {
            return "the host \(host) is not a local address or name (\(String(cString: gai_strerror(resolved))))"
        }
        defer { freeaddrinfo(found) }
        let descriptor = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { return String(cString: strerror(errno)) }
        defer { close(descriptor) }
        var on: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            if code == EADDRINUSE { return "the port \(port) is in use by another process" }
            if code == EADDRNOTAVAIL { return "\(host) is not an address of this machine" }
            return String(cString: strerror(code))
        }
        return nil
    }
}
