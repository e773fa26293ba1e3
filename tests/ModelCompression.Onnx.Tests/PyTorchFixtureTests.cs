using System.Text.Json;

namespace ModelCompression.Onnx.Tests;

/// <summary>
/// Models exported by real PyTorch (tests/fixtures/pytorch, described by fixtures.json): loading and saving
/// them, inline or with external data, must not change what ONNX Runtime computes, nor the content hash.
/// </summary>
public sealed class PyTorchFixtureTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var file in Manifest().RootElement.GetProperty("files").EnumerateObject())
        {
            data.Add(file.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Resaved_models_compute_exactly_what_the_originals_compute(string fixture)
    {
        var original = Fixtures.CopyTo(fixture, _dir);
        var model = OnnxModelFile.Load(original);
        Assert.Empty(OnnxChecker.Check(model, original));

        var inline = _dir.File("inline.onnx");
        var external = _dir.File("external.onnx");
        OnnxModelFile.Save(model, inline);
        OnnxModelFile.Save(model, external, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always, Alignment = 4096 });
        Assert.True(File.Exists(external + ".data"));

        foreach (var seed in new[] { 1, 2 })
        {
            var inputs = RandomInputs(fixture, seed);
            var expected = Ort.Run(original, inputs);
            Assert.Equal(expected, Ort.Run(inline, inputs));
            Assert.Equal(expected, Ort.Run(external, inputs));
        }

        var hash = ModelHash.ComputeFile(original);
        Assert.Equal(hash, ModelHash.Compute(model));
        Assert.Equal(hash, ModelHash.ComputeFile(inline));
        Assert.Equal(hash, ModelHash.ComputeFile(external));
        Assert.Equal(hash, ModelHash.Compute(OnnxModelFile.Load(external)));
        Assert.Equal(model, OnnxModelFile.Load(external));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Resaved_models_reproduce_the_pytorch_reference_outputs(string fixture)
    {
        var entry = Manifest().RootElement.GetProperty("files").GetProperty(fixture);
        var tolerance = Manifest().RootElement.GetProperty("tolerance").GetDouble();
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Join(Fixtures.Folder, entry.GetProperty("expected").GetString()!)));
        var inputs = reference.RootElement.GetProperty("inputs").EnumerateArray().Select(input =>
        {
            var shape = input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var values = input.GetProperty("data").EnumerateArray();
            return input.GetProperty("dtype").GetString() == "int64"
                ? new Ort.Input(input.GetProperty("name").GetString()!, shape, Int64s: values.Select(v => v.GetInt64()).ToArray())
                : new Ort.Input(input.GetProperty("name").GetString()!, shape, Floats: values.Select(v => v.GetSingle()).ToArray());
        }).ToArray();

        var resaved = _dir.File("resaved.onnx");
        OnnxModelFile.Save(OnnxModelFile.Load(Fixtures.CopyTo(fixture, _dir)), resaved);
        var actual = Ort.Run(resaved, inputs);

        foreach (var output in reference.RootElement.GetProperty("outputs").EnumerateArray())
        {
            var expected = output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            var got = actual[output.GetProperty("name").GetString()!];
            Assert.Equal(expected.Length, got.Length);
            for (var i = 0; i < got.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - got[i]) <= tolerance, $"{fixture}[{i}]: {got[i]} vs PyTorch {expected[i]}");
            }
        }
    }

    private static JsonDocument Manifest() => JsonDocument.Parse(File.ReadAllText(Path.Join(Fixtures.Folder, "fixtures.json")));

    /// <summary>Random inputs as the manifest describes them: batch 3, other symbolic axes 7, integers in their range.</summary>
    private static Ort.Input[] RandomInputs(string fixture, int seed)
    {
        var random = new Random(seed);
        using var manifest = Manifest();
        return manifest.RootElement.GetProperty("files").GetProperty(fixture).GetProperty("inputs").EnumerateArray().Select(input =>
        {
            var name = input.GetProperty("name").GetString()!;
            var shape = input.GetProperty("shape").EnumerateArray()
                .Select(d => d.ValueKind == JsonValueKind.Number ? d.GetInt64() : d.GetString() == "batch" ? 3 : 7)
                .ToArray();
            var count = shape.Aggregate(1L, (a, b) => a * b);
            if (input.GetProperty("dtype").GetString() == "int64")
            {
                var range = input.GetProperty("range");
                var (low, high) = (range[0].GetInt64(), range[1].GetInt64());
                var values = Enumerable.Range(0, (int)count).Select(_ => random.NextInt64(low, high)).ToArray();
                if (name == "attention_mask")
                {
                    // Keep the first position attended in every row.
                    for (var i = 0; i < values.Length; i += (int)shape[^1])
                    {
                        values[i] = 1;
                    }
                }

                return new Ort.Input(name, shape, Int64s: values);
            }

            return new Ort.Input(name, shape, Floats: Enumerable.Range(0, (int)count).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray());
        }).ToArray();
    }
}
