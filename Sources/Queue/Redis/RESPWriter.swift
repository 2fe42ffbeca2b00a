import NIOCore

/// Writes command arguments as RESP bulk strings.
public struct RESPWriter {
    var buffer: ByteBuffer

    public mutating func write(_ text: String) {
        buffer.writeStaticString("$")
        buffer.writeString(String(text.utf8.count))
        buffer.writeStaticString("\r\n")
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    public mutating func write(_ text: StaticString) {
        buffer.writeStaticString("$")
        buffer.writeString(String(text.utf8CodeUnitCount))
        buffer.writeStaticString("\r\n")
        buffer.writeStaticString(text)
        buffer.writeStaticString("\r\n")
    }

    public mutating func write(_ bytes: ByteBuffer) {
        buffer.writeStaticString("$")
        buffer.writeString(String(bytes.readableBytes))
        buffer.writeStaticString("\r\n")
        buffer.writeImmutableBuffer(bytes)
        buffer.writeStaticString("\r\n")
    }

    public mutating func write(_ number: Int) {
        write(String(number))
    }
}
