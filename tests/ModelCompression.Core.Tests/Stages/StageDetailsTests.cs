using System.Globalization;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Stages;

public sealed class StageDetailsTests
{
    private enum Shape
    {
        PerChannel,
    }

    private record BaseDetails
    {
        [Detail("method")]
        public Shape Method { get; init; }

        [Detail("steps")]
        public int Steps { get; init; }
    }

    private sealed record SomeDetails : BaseDetails
    {
        [Detail("accuracy", Format = "0.0000", EmptyWhenNull = true)]
        public double? Accuracy { get; init; }

        [Detail("ratio")]
        public double Ratio { get; init; }

        [Detail("left_out")]
        public string? LeftOut { get; init; }

        [Detail("early")]
        public bool Early { get; init; }

        [Detail("hints", Separator = "; ")]
        public IReadOnlyList<string> Hints { get; init; } = [];

        public IReadOnlyDictionary<string, string> PerLayer { get; init; } = new Dictionary<string, string>();

        public int NotADetail { get; init; } = 7;
    }

    [Fact]
    public void Entries_follow_declaration_order_base_first_with_invariant_text()
    {
        var details = StageDetails.Of(new SomeDetails
        {
            Method = Shape.PerChannel,
            Steps = 1200,
            Accuracy = 0.912345,
            Ratio = 0.1,
            Early = true,
            Hints = ["a -> b", "c -> d"],
            PerLayer = new Dictionary<string, string> { ["sensitivity.fc1"] = "0.0100" },
        });

        Assert.Equal(["method", "steps", "accuracy", "ratio", "early", "hints", "sensitivity.fc1"], details.Keys);
        Assert.Equal("perchannel", details["method"]);
        Assert.Equal("1200", details["steps"]);
        Assert.Equal("0.9123", details["accuracy"]);
        Assert.Equal("0.1", details["ratio"]);
        Assert.Equal("true", details["early"]);
        Assert.Equal("a -> b; c -> d", details["hints"]);
        Assert.Equal("0.0100", details["sensitivity.fc1"]);
    }

    [Fact]
    public void A_null_value_is_left_out_or_empty_as_its_attribute_says()
    {
        var details = StageDetails.Of(new SomeDetails { Accuracy = null, LeftOut = null });

        Assert.Equal("", details["accuracy"]);
        Assert.False(details.ContainsKey("left_out"));
    }

    [Fact]
    public void Text_does_not_depend_on_the_threads_culture()
    {
        var before = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = new CultureInfo("de-DE");
            Assert.Equal("0.5", StageDetails.Of(new SomeDetails { Ratio = 0.5 })["ratio"]);
        }
        finally
        {
            CultureInfo.CurrentCulture = before;
        }
    }
}
