using System.Buffers;

namespace RaySharing.Wire;

/// <summary>Blocks of memory as one <see cref="ReadOnlySequence{T}"/>: how an object over 2 GiB is seen whole.</summary>
internal static class Sequences
{
    public static ReadOnlySequence<byte> Of(IReadOnlyList<ReadOnlyMemory<byte>> blocks)
    {
        switch (blocks.Count)
        {
            case 0:
                return ReadOnlySequence<byte>.Empty;
            case 1:
                return new ReadOnlySequence<byte>(blocks[0]);
        }

        var first = new Block(blocks[0], 0);
        var last = first;
        for (var i = 1; i < blocks.Count; i++)
        {
            last = last.Append(blocks[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Block : ReadOnlySequenceSegment<byte>
    {
        public Block(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Block Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Block(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
