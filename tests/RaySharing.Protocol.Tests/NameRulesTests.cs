using RaySharing.Wire;
using Xunit;

namespace RaySharing.Protocol.Tests;

public sealed class NameRulesTests
{
    [Theory]
    [InlineData("H")]
    [InlineData("DUMMY_HOLDER")]
    [InlineData("job/2024-01-01 part 7")]
    [InlineData(" padded ")]
    [InlineData("équipe")]
    [InlineData("数据持有者🗄")]
    [InlineData("e\u0301")]
    public void Problem_ValidName_Null(string name) => Assert.Null(NameRules.Problem(name, "holder name"));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a\0b", "U+0000")]
    [InlineData("line\r\n", "U+000D")]
    [InlineData("\n", "U+000A")]
    [InlineData("tab\there", "U+0009")]
    [InlineData("del\u007f", "U+007F")]
    [InlineData("c1\u0085", "U+0085")]
    [InlineData(" ", "white space")]
    [InlineData("\u3000\u00a0 ", "white space")]
    public void Problem_InvalidName_SaysWhy(string name, string why)
    {
        var problem = NameRules.Problem(name, "key");

        Assert.NotNull(problem);
        Assert.Contains("key", problem);
        Assert.Contains(why, problem);
    }

    [Fact]
    public void Problem_LengthInUtf8Bytes_LimitIs1024()
    {
        Assert.Null(NameRules.Problem(new string('a', 1024), "namespace"));
        Assert.Contains("1025 UTF-8 bytes", NameRules.Problem(new string('a', 1025), "namespace"));
        // 512 two-byte characters are 1024 bytes; one more is over.
        Assert.Null(NameRules.Problem(new string('é', 512), "namespace"));
        Assert.NotNull(NameRules.Problem(new string('é', 512) + "a", "namespace"));
    }

    [Fact]
    public void Problem_LoneSurrogate_NotWellFormed() => Assert.Contains("surrogate", NameRules.Problem("lone" + (char)0xD800, "key"));

    [Fact]
    public void Problem_Null_Empty() => Assert.Contains("empty", NameRules.Problem(null, "key"));
}
