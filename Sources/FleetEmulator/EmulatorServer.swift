import FleetModel
import Foundation
import Hummingbird
import Logging

/// Thrown by a response body to drop the connection (fault injection).
struct DroppedConnection: Error {}

/// Serves an ``Emulator`` over HTTP with Hummingbird.
///
/// Routes:
/// - `POST /v1/access_tokens` (JSON body) and `POST /v1/access_token` (form body): tokens;
/// - `GET /v1/vehicle-data/autoapi-13/{vin}`: vehicle data;
/// - platform: `POST /v1/eligibility`, `GET|POST /v1/fleets/vehicles`, `GET|DELETE /v1/fleets/vehicles/{vin}`;
/// - document: `GET /v1/eligibility/{vin}`, `GET|POST /v1/fleet/vehicles`, `GET|DELETE /v1/fleet/vehicles/{vin}`;
/// - `POST /emulator/clearance` with `{"vin", "status"}`: force a clearance status;
/// - `POST /emulator/faults` with `{"vin", "status"?, "retry_after"?, "body"?, "count"?, …}`: queue a
///   fault (`"endpoint": "token"` and no `vin`: a fault of the token endpoint; `status` 503 when
///   absent); `GET /emulator/faults` lists the queued ones, `DELETE /emulator/faults` clears them;
/// - `GET|POST /emulator/limits` with `{"rate_limit"?: {"requests", "per_ms"}|null, "vehicle_quota"?: …}`:
///   the application-wide rate limit (429) and the per-vehicle quota (403 `Quota exceeded`);
/// - `GET /emulator/vehicles`: the simulated VINs and their current phase;
/// - the consent flow (``Emulator/authorizationPage(query:)``): `GET /oauth/new` (the owner's page),
///   `GET|POST /oauth/approve` (the owner allows access: a redirect with `code` and `state`), the
///   `authorization_code` and `refresh_token` grants of the token endpoint, `DELETE
///   /v1/access_tokens` and `/v1/access_token` (revocation), `GET /v1/vehicleinfo`, and `POST
///   /emulator/consent/withdraw` with `{"vin"}` (the owner withdraws consent).
public enum EmulatorServer {
    /// Builds the Hummingbird application.
    ///
    /// - Parameters:
    ///   - host: Address to bind, `127.0.0.1` by default.
    ///   - port: Port to bind; 0 picks a free one, reported to `onRunning`.
    ///   - onRunning: Called with the bound port once the server accepts connections.
    public static func application(
        emulator: Emulator,
        host: String = "127.0.0.1",
        port: Int,
        logger: Logger = Logger(label: "fleet-telemetry.emulator"),
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/access_tokens") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
            let fields: [String: String]
            let kind: String
            if let object = json?.objectValue {
                fields = object.compactMapValues { $0.stringValue }
                kind = "json"
            } else {
                fields = formFields(String(buffer: body))
                kind = "form"
            }
            return try await serve(emulator.accessToken(fields: fields, via: "POST /v1/access_tokens " + kind))
        }
        router.post("/v1/access_token") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let fields = formFields(String(buffer: body))
            return try await serve(emulator.accessToken(fields: fields, via: "POST /v1/access_token form"))
        }
        // Revocation (RFC 7009), both families; JSON or form body.
        for path in ["/v1/access_tokens", "/v1/access_token"] {
            router.delete(RouterPath(path)) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 64 * 1024)
                let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
                let fields = json?.objectValue?.compactMapValues { $0.stringValue } ?? formFields(String(buffer: body))
                return response(emulator.revokeToken(fields))
            }
        }
        // The owner's side of the consent flow: the page, and the approval it (or a script) sends.
        router.get("/oauth/new") { request, _ -> Response in
            response(emulator.authorizationPage(query: queryFields(request)))
        }
        router.get("/oauth/approve") { request, _ -> Response in
            response(emulator.approveAuthorization(query: queryFields(request)))
        }
        router.post("/oauth/approve") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let fields = queryFields(request).merging(formFields(String(buffer: body))) { _, form in form }
            return response(emulator.approveAuthorization(query: fields))
        }
        router.get("/v1/vehicleinfo") { request, _ -> Response in
            response(emulator.vehicleInfo(authorization: request.headers[.authorization]))
        }
        // The owner (or the OEM) withdraws consent: {"vin": VIN}.
        router.post("/emulator/consent/withdraw") { request, _ -> Response in
            guard let vin = try await jsonBody(request)?["vin"]?.stringValue.flatMap(VIN.init) else {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "expected {\"vin\": VIN}", requestID: emulator.nextRequestID()))
            }
            let revoked = emulator.withdrawConsent(vin: vin)
            return response(
                .init(
                    status: 200, headers: [("Content-Type", "application/json")],
                    body: Emulator.encode(.object(["revoked": .number(Double(revoked))]))))
        }
        router.get("/v1/vehicle-data/autoapi-13/:vin") { request, context -> Response in
            let vin = context.parameters.get("vin") ?? ""
            return try await serve(emulator.vehicleData(vinText: vin, authorization: request.headers[.authorization]))
        }
        router.post("/v1/eligibility") { request, _ -> Response in
            let json = try await jsonBody(request)
            return response(
                emulator.eligibility(
                    vinText: json?["vin"]?.stringValue, brand: json?["brand"]?.stringValue,
                    authorization: request.headers[.authorization], family: .platform))
        }
        router.get("/v1/eligibility/:vin") { request, context -> Response in
            response(
                emulator.eligibility(
                    vinText: context.parameters.get("vin"), brand: nil, authorization: request.headers[.authorization],
                    family: .document))
        }
        for (path, family) in [("/v1/fleets/vehicles", Emulator.Family.platform), ("/v1/fleet/vehicles", .document)] {
            router.get(RouterPath(path)) { request, _ -> Response in
                response(emulator.listFleet(authorization: request.headers[.authorization], family: family))
            }
            router.get(RouterPath(path + "/:vin")) { request, context -> Response in
                response(
                    emulator.showFleetVehicle(
                        vinText: context.parameters.get("vin") ?? "", authorization: request.headers[.authorization],
                        family: family))
            }
            router.delete(RouterPath(path + "/:vin")) { request, context -> Response in
                response(
                    emulator.removeFleetVehicle(
                        vinText: context.parameters.get("vin") ?? "", authorization: request.headers[.authorization],
                        family: family))
            }
            router.post(RouterPath(path)) { request, _ -> Response in
                let json = try await jsonBody(request)
                return response(
                    family == .platform
                        ? emulator.registerPlatform(body: json, authorization: request.headers[.authorization])
                        : emulator.registerDocument(body: json, authorization: request.headers[.authorization]))
            }
        }
        router.post("/emulator/clearance") { request, _ -> Response in
            let json = try await jsonBody(request)
            guard let vin = json?["vin"]?.stringValue.flatMap(VIN.init),
                let status = json?["status"]?.stringValue.flatMap(ClearanceStatus.init)
            else {
                return response(
                    Emulator.apiError(
                        400, "Bad Request",
                        "expected {\"vin\": VIN, \"status\": pending|approved|rejected|revoking|revoked|canceling|canceled|error}",
                        requestID: "emulator"))
            }
            emulator.setClearance(status, vin: vin)
            return response(.init(status: 204, headers: [], body: ""))
        }
        router.post("/emulator/faults") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let usage =
                "expected {\"vin\": VIN or \"all\" (or \"endpoint\": \"token\"), \"status\"?: 100-599 (default 503), \"retry_after\"?: string, \"body\"?: string, \"delay_ms\"?: int, \"drop\"?: bool, \"drip_ms\"?: int, \"count\"?: int}"
            let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
            let forToken = json?["endpoint"]?.stringValue == "token"
            let vinText = json?["vin"]?.stringValue ?? (forToken ? "all" : "")
            guard let json, let fields = json.objectValue else {
                return response(
                    Emulator.apiError(400, "Bad Request", "not a JSON object; " + usage, requestID: "emulator"))
            }
            let known: Set<String> = [
                "vin", "endpoint", "status", "retry_after", "body", "delay_ms", "drop", "drip_ms", "count",
            ]
            if let unknown = fields.keys.first(where: { !known.contains($0) }) {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "unknown field \"\(unknown)\"; " + usage, requestID: "emulator"))
            }
            if let endpoint = json["endpoint"],
                endpoint.stringValue != "token" && endpoint.stringValue != "vehicle_data"
            {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "\"endpoint\" must be \"token\" or \"vehicle_data\"; " + usage,
                        requestID: "emulator"))
            }
            if let count = json["count"], (count.numberValue ?? 0) < 1 || (count.numberValue ?? 0) > 1_000_000 {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "\"count\" must be a number from 1 to 1000000; " + usage,
                        requestID: "emulator"))
            }
            guard vinText == "all" || VIN(vinText) != nil else {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "\"vin\" must be a VIN or \"all\", got \"\(vinText)\"; " + usage,
                        requestID: "emulator"))
            }
            if let given = json["status"], given.numberValue == nil {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "\"status\" must be a number (an HTTP status 100-599); " + usage,
                        requestID: "emulator"))
            }
            let status = json["status"]?.numberValue ?? 503
            guard (100...599).contains(status), status == status.rounded() else {
                return response(
                    Emulator.apiError(
                        400, "Bad Request", "\"status\" must be an HTTP status 100-599; " + usage,
                        requestID: "emulator"))
            }
            let count = Int(min(max(json["count"]?.numberValue ?? 1, 0), 1_000_000))
            let delay = json["delay_ms"]?.numberValue.map { Duration.milliseconds(Int64(min(max($0, 0), 600_000))) }
            var drop = false
            if case .bool(true)? = json["drop"] { drop = true }
            let drip = json["drip_ms"]?.numberValue.map { Duration.milliseconds(Int64(min(max($0, 1), 60_000))) }
            let retryAfter = json["retry_after"].flatMap {
                $0.stringValue ?? $0.numberValue.map { SampleValue.number($0).description }
            }
            let fault = Emulator.Fault(
                status: Int(status), retryAfter: retryAfter, body: json["body"]?.stringValue, delay: delay, drop: drop,
                drip: drip)
            if forToken {
                emulator.injectTokenFault(fault, count: count)
            } else {
                emulator.inject(fault, vin: VIN(vinText), count: count)
            }
            return response(.init(status: 204, headers: [], body: ""))
        }
        router.get("/emulator/faults") { _, _ -> Response in
            let list = emulator.queuedFaults.map { queued -> JSONValue in
                var object: JSONObject = [
                    "target": .string(queued.target), "status": .number(Double(queued.fault.status)),
                    "remaining": .number(Double(queued.remaining)),
                ]
                object["retry_after"] = queued.fault.retryAfter.map(JSONValue.string) ?? .null
                object["body"] = queued.fault.body.map(JSONValue.string) ?? .null
                object["delay_ms"] = queued.fault.delay.map { .number(Double($0.milliseconds)) } ?? .null
                object["drip_ms"] = queued.fault.drip.map { .number(Double($0.milliseconds)) } ?? .null
                object["drop"] = .bool(queued.fault.drop)
                return .object(object)
            }
            return response(
                .init(status: 200, headers: [("Content-Type", "application/json")], body: Emulator.encode(.array(list)))
            )
        }
        router.delete("/emulator/faults") { _, _ -> Response in
            let cleared = emulator.clearFaults()
            return response(
                .init(
                    status: 200, headers: [("Content-Type", "application/json")],
                    body: Emulator.encode(.object(["cleared": .number(Double(cleared))]))))
        }
        router.get("/emulator/limits") { _, _ -> Response in
            response(
                .init(status: 200, headers: [("Content-Type", "application/json")], body: limitsJSON(emulator.limits)))
        }
        router.post("/emulator/limits") { request, _ -> Response in
            guard case .object(let json)? = try await jsonBody(request) else {
                return response(Emulator.apiError(400, "Bad Request", limitsUsage, requestID: "emulator"))
            }
            var limits = emulator.limits
            for (key, value) in json {
                let limit: EmulatorConfiguration.RateLimit?
                if case .null = value {
                    limit = nil
                } else if let fields = value.objectValue, Set(fields.keys) == ["requests", "per_ms"],
                    let requests = value["requests"]?.numberValue, requests >= 1, requests <= 1_000_000,
                    requests == requests.rounded(),
                    let per = value["per_ms"]?.numberValue, per >= 1, per <= 86_400_000 * 7, per == per.rounded()
                {
                    limit = .init(requests: Int(requests), per: .milliseconds(Int64(per)))
                } else {
                    return response(Emulator.apiError(400, "Bad Request", limitsUsage, requestID: "emulator"))
                }
                switch key {
                case "rate_limit": limits.rateLimit = limit
                case "vehicle_quota": limits.vehicleQuota = limit
                default: return response(Emulator.apiError(400, "Bad Request", limitsUsage, requestID: "emulator"))
                }
            }
            if limits != emulator.limits { emulator.setLimits(limits) }
            return response(
                .init(status: 200, headers: [("Content-Type", "application/json")], body: limitsJSON(limits)))
        }
        router.get("/emulator/vehicles") { _, _ -> Response in
            let consent = Set(emulator.configuration.consentVINs)
            let vehicles = (emulator.configuration.vins + emulator.configuration.consentVINs).compactMap {
                vin -> JSONValue? in
                guard let s = emulator.snapshot(vin: vin) else { return nil }
                return .object([
                    "vin": .string(vin.rawValue), "phase": .string(s.phase.rawValue),
                    "simulated_time": .string(s.at.iso8601), "consent": .bool(consent.contains(vin)),
                ])
            }
            return response(
                .init(
                    status: 200, headers: [("Content-Type", "application/json")],
                    body: Emulator.encode(.array(vehicles))))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "fleet-telemetry-emulator"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }

    static let limitsUsage =
        "expected {\"rate_limit\"?: {\"requests\": 1-1000000, \"per_ms\": 1-604800000} or null, \"vehicle_quota\"?: the same}"

    static func limitsJSON(_ limits: Emulator.Limits) -> String {
        func json(_ limit: EmulatorConfiguration.RateLimit?) -> JSONValue {
            guard let limit else { return .null }
            return .object([
                "requests": .number(Double(limit.requests)), "per_ms": .number(Double(limit.per.milliseconds)),
            ])
        }
        return Emulator.encode(
            .object(["rate_limit": json(limits.rateLimit), "vehicle_quota": json(limits.vehicleQuota)]))
    }

    /// Serves `reply` as it asks: after its delay, dropped, trickled byte by byte, or whole.
    static func serve(_ reply: Emulator.Reply) async throws -> Response {
        if let delay = reply.delay { try await Task.sleep(for: delay) }
        if reply.drop {
            // A body that fails mid-stream makes the server close the connection unanswered.
            return Response(status: .ok, headers: [:], body: ResponseBody { _ in throw DroppedConnection() })
        }
        if let drip = reply.drip {
            let bytes = Array(reply.body.utf8)
            return Response(
                status: .init(code: reply.status), headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    for byte in bytes {
                        try await writer.write(ByteBuffer(bytes: [byte]))
                        try await Task.sleep(for: drip)
                    }
                    try await writer.finish(nil)
                })
        }
        return response(reply)
    }

    /// The request body as JSON, or `nil` when it is not JSON; at most 1 MiB is read.
    static func jsonBody(_ request: Request) async throws -> JSONValue? {
        let body = try await request.body.collect(upTo: 1024 * 1024)
        return try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
    }

    static func response(_ reply: Emulator.Reply) -> Response {
        var headers = HTTPFields()
        for (name, value) in reply.headers {
            switch name {
            case "Content-Type": headers[.contentType] = value
            case "Retry-After": headers[.retryAfter] = value
            case "Location": headers[.location] = value
            default: continue
            }
        }
        return Response(
            status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: reply.body))
        )
    }

    /// The query string's fields (the last of a repeated name).
    static func queryFields(_ request: Request) -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { fields[String(name)] = String(value) }
        return fields
    }

    /// Parses an `application/x-www-form-urlencoded` body.
    static func formFields(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }
}
