namespace ExecutorsToDriver;

/// <summary>
/// One executor's output. Public so MessagePack's contractless resolver (the client's default) can
/// serialize it, as a map <c>{"Index": i, "Rows": [...]}</c> that any language can read.
/// </summary>
/// <param name="Index">The partition's index, 0 to N-1.</param>
/// <param name="Rows">Row j is <c>Index * RowStride + j</c>, so the driver can check every value.</param>
public sealed record Partition(int Index, long[] Rows)
{
    /// <summary>Rows per partition are capped below this so that every value names its partition.</summary>
    public const int RowStride = 1_000_000;

    /// <summary>Large enough that a partition (about 1.2 MB encoded) streams in chunks rather than one message.</summary>
    public const int DefaultRows = 250_000;

    public static Partition Build(int index, int rows)
    {
        var values = new long[rows];
        for (var j = 0; j < rows; j++)
        {
            values[j] = ExpectedRow(index, j);
        }

        return new Partition(index, values);
    }

    /// <summary>Why <paramref name="partition"/> is not a partition this job built; null when it is.</summary>
    public static string? FindMismatch(Partition partition, int partitions, int rows)
    {
        if (partition.Index < 0 || partition.Index >= partitions)
        {
            return $"partition index {partition.Index} is outside 0..{partitions - 1}";
        }

        if (partition.Rows.Length != rows)
        {
            return $"partition {partition.Index} has {partition.Rows.Length} rows, expected {rows}";
        }

        for (var j = 0; j < rows; j++)
        {
            if (partition.Rows[j] != ExpectedRow(partition.Index, j))
            {
                return $"partition {partition.Index} row {j} is {partition.Rows[j]}, expected {ExpectedRow(partition.Index, j)}";
            }
        }

        return null;
    }

    private static long ExpectedRow(int index, int row) => ((long)index * RowStride) + row;
}
