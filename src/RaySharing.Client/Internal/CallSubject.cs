namespace RaySharing.Internal;

/// <summary>What a call is about, for the errors it may end with: an object, a holder, or neither.</summary>
internal readonly record struct CallSubject(ObjectId? ObjectId = null, string? HolderNamespace = null, string? HolderName = null)
{
    public static CallSubject Object(ObjectId id) => new(ObjectId: id);

    public static CallSubject Holder(string holderNamespace, string name) => new(HolderNamespace: holderNamespace, HolderName: name);

    public static CallSubject Holder(ObjectHolder holder) => new(HolderNamespace: holder.Namespace, HolderName: holder.Name);

    /// <summary>" of object …" or " on holder '…'", or empty: the words a message puts after the operation.</summary>
    public string Describe() =>
        ObjectId is { } id ? $" of object {id}"
        : HolderName is not null ? $" on holder '{HolderNamespace}/{HolderName}'"
        : string.Empty;
}
