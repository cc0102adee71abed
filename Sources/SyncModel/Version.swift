/// Version of ehr-sync, sent as `User-Agent: ehr-sync/<version>` and shown by `syncctl`.
public enum EHRSync {
    public static let version = "0.1.0"
}
