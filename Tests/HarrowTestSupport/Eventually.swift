/// Thrown by ``eventually(_:timeout:poll:fileID:line:_:)`` when the condition never held.
public struct EventuallyTimeout: Error, CustomStringConvertible {
    public var condition: String
    public var timeout: Duration
    /// The last error the condition threw, if its last evaluation threw.
    public var lastError: (any Error)?
    public var location: String

    public var description: String {
        var text = "\(location): \(condition) did not hold within \(timeout)"
        if let lastError { text += " (last error: \(lastError))" }
        return text
    }
}

/// Re-evaluates `condition` every `poll` until it returns `true`; throws ``EventuallyTimeout``
/// when it has not within `timeout`.
///
/// For waiting on asynchronous outcomes (a TTL expiring, a server coming back), never for
/// asserting that something is fast. An evaluation that throws counts as "not yet"; the last
/// such error is reported on timeout.
public func eventually(
    _ condition: @autoclosure () -> String = "condition",
    timeout: Duration = .seconds(30),
    poll: Duration = .milliseconds(20),
    fileID: String = #fileID,
    line: Int = #line,
    _ check: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var lastError: (any Error)?
    while true {
        do {
            if try await check() { return }
            lastError = nil
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            lastError = error
        }
        if clock.now >= deadline {
            throw EventuallyTimeout(
                condition: condition(), timeout: timeout, lastError: lastError, location: "\(fileID):\(line)")
        }
        try await Task.sleep(for: poll)
    }
}
