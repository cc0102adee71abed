/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the format of the `Date` and
/// `Retry-After` headers.
public enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970, or nil.
    public static func parse(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]),
            let month = months.firstIndex(of: String(parts[2])), let year = Int(parts[3])
        else { return nil }
        let time = parts[4].split(separator: ":")
        guard time.count == 3, let h = Int(time[0]), let m = Int(time[1]), let s = Int(time[2]) else { return nil }
        let days = FHIRInstant.daysFromCivil(year, month + 1, day)
        return Double(days * 86_400 + h * 3600 + m * 60 + s)
    }
}
