using Google.Protobuf;
using ModelCompression.Core.Tests.Data;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// Every model file a recipe names (the teacher, a student file, with or without a teacher) goes through the
/// project's own loader and checker before ONNX Runtime sees it: an empty or truncated file is MC2001 and external
/// data that leaves the model's folder is MC2003, each naming the file, and the run writes nothing.
/// </summary>
public sealed class ModelFileCheckTests : IDisposable
{
    private const int Tokens = 16;

    private static readonly string Fixture = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "bert_opset13.onnx");

    private readonly TempDir _dir = new();
    private readonly string _outside;

    public ModelFileCheckTests()
    {
        _outside = _dir.Dir("outside");
        File.WriteAllBytes(Path.Join(_outside, "weights.bin"), new byte[100 * 32 * sizeof(float)]);
        Directory.CreateDirectory(_dir.File("project"));
        foreach (var split in new[] { "train", "test" })
        {
            Npy.WriteLongs(Project($"ids-{split}.npy"), [.. Enumerable.Range(0, 6 * Tokens).Select(i => (long)(1 + (i % 90)))], 6, Tokens);
            Npy.WriteLongs(Project($"mask-{split}.npy"), [.. Enumerable.Repeat(1L, 6 * Tokens)], 6, Tokens);
            Npy.WriteLongs(Project($"labels-{split}.npy"), [0, 1, 2, 0, 1, 2], 6);
        }
    }

    public enum Role
    {
        Student,
        StudentWithoutTeacher,
        Teacher,
    }

    public enum Damage
    {
        Empty,
        Truncated,
        DotDotExternalData,
        AbsoluteExternalData,
        SymlinkedExternalData,
    }

    public static TheoryData<Role, Damage> Cases()
    {
        var cases = new TheoryData<Role, Damage>();
        foreach (var role in Enum.GetValues<Role>())
        {
            foreach (var damage in Enum.GetValues<Damage>())
            {
                cases.Add(role, damage);
            }
        }

        return cases;
    }

    public void Dispose() => _dir.Dispose();

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_bad_model_file_in_a_recipe_is_reported_by_the_project_s_loader_before_ONNX_Runtime_reads_it(Role role, Damage damage)
    {
        File.Copy(Fixture, Project("good.onnx"));
        var bad = WriteBad(damage);
        var (teacher, student) = role switch
        {
            Role.Student => ("teacher: good.onnx\n", "student: { model: bad.onnx }"),
            Role.StudentWithoutTeacher => ("", "student: { model: bad.onnx }"),
            _ => ("teacher: bad.onnx\n", "student: { model: good.onnx }"),
        };
        var recipe = _dir.Write("project/bad.compress.yaml", $$"""
            data:
              format: npy
              train: { inputs: { input_ids: ids-train.npy, attention_mask: mask-train.npy }, labels: labels-train.npy }
              test:  { inputs: { input_ids: ids-test.npy, attention_mask: mask-test.npy }, labels: labels-test.npy }
            {{teacher}}{{student}}
            stages:
              - quantize: { mode: dynamic }
            outputs: { model: out.onnx, report: [json] }
            """);
        var output = _dir.Dir("out");

        var error = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), output, new RecordingReporter())));

        var diagnostic = Assert.Single(error.Diagnostics);
        Assert.Equal(damage is Damage.Empty or Damage.Truncated ? DiagnosticCodes.ModelUnreadable : DiagnosticCodes.ExternalDataOutsideModelFolder, diagnostic.Code);
        Assert.Equal(bad, diagnostic.File);
        Assert.DoesNotContain("ONNX Runtime", diagnostic.Message, StringComparison.Ordinal);
        // Nothing half-written: no model, no report (only the run's lock file may be there).
        Assert.DoesNotContain(Directory.GetFiles(output), f => !Path.GetFileName(f).StartsWith('.'));
    }

    [Theory]
    [InlineData(Damage.Empty)]
    [InlineData(Damage.DotDotExternalData)]
    public void The_runner_checks_a_file_before_ONNX_Runtime_opens_it(Damage damage)
    {
        var bad = WriteBad(damage);
        var expected = damage == Damage.Empty ? DiagnosticCodes.ModelUnreadable : DiagnosticCodes.ExternalDataOutsideModelFolder;

        Assert.Equal(expected, Assert.Throws<CompressionException>(() => new OnnxRunner(bad)).Code);
        Assert.Equal(expected, Assert.Throws<CompressionException>(() => OnnxRunner.ReadInputs(bad)).Code);
        Assert.Equal(expected, Assert.Throws<CompressionException>(() => OnnxRunner.WithIntermediateOutputs(bad, ["logits"])).Code);
    }

    [Fact]
    public void A_file_that_parses_but_fails_the_checker_is_MC2002_in_the_project_s_words()
    {
        var model = OnnxModelFile.Load(Fixture);
        model.Graph.Node[3].Input[0] = "no_such_value";
        var path = Project("undefined.onnx");
        OnnxModelFile.Save(model, path);

        var error = Assert.Throws<CompressionException>(() => new OnnxRunner(path));

        Assert.Equal(DiagnosticCodes.ModelInvalid, error.Code);
        Assert.Contains("no_such_value", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ONNX Runtime", error.Message, StringComparison.Ordinal);
    }

    private string Project(string name) => _dir.File(Path.Join("project", name));

    /// <summary>Writes project/bad.onnx damaged as asked; the external data variants point the word embeddings outside.</summary>
    private string WriteBad(Damage damage)
    {
        var path = Project("bad.onnx");
        var bytes = File.ReadAllBytes(Fixture);
        switch (damage)
        {
            case Damage.Empty:
                File.WriteAllBytes(path, []);
                break;
            case Damage.Truncated:
                File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
                break;
            default:
                var location = damage switch
                {
                    Damage.DotDotExternalData => "../outside/weights.bin",
                    Damage.AbsoluteExternalData => Path.Join(_outside, "weights.bin"),
                    _ => "linked.bin",
                };
                if (damage == Damage.SymlinkedExternalData)
                {
                    File.CreateSymbolicLink(Project("linked.bin"), Path.Join(_outside, "weights.bin"));
                }

                var model = ModelProto.Parser.ParseFrom(bytes);
                var embeddings = model.Graph.Initializer.Single(i => i.Name == "word_embeddings.weight");
                embeddings.RawData = ByteString.Empty;
                embeddings.DataLocation = TensorProto.Types.DataLocation.External;
                embeddings.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
                File.WriteAllBytes(path, model.ToByteArray());
                break;
        }

        return path;
    }
}
