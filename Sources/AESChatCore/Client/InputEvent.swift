/// A line of input, or its end.
public enum InputEvent: Sendable {
    case line(String)
    case end
}
