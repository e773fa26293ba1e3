using ModelCompression.Inference;
using GenAi = Microsoft.ML.OnnxRuntimeGenAI;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// ONNX Runtime GenAI (0.20.0) loads tests/fixtures/decoder as a model folder (its genai_config.json beside the cache
/// export) and generates PyTorch's greedy tokens: an export in the decoder convention is a GenAI model once the folder
/// has that file. GenAI stops on the end-of-text token without returning it.
/// </summary>
public sealed class GenAiFolderTests
{
    [Fact]
    public void GenAI_generates_PyTorchs_greedy_tokens_from_the_fixture_folder()
    {
        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using var model = new GenAi.Model(DecoderFixture.Folder);

        foreach (var (prompt, tokens, eos) in DecoderFixture.Greedy)
        {
            using var options = new GenAi.GeneratorParams(model);
            options.SetSearchOption("max_length", prompt.Length + DecoderFixture.GreedyMaxNewTokens);
            options.SetSearchOption("do_sample", false);
            using var generator = new GenAi.Generator(model, options);
            generator.AppendTokens(prompt);
            while (!generator.IsDone())
            {
                generator.GenerateNextToken();
            }

            var generated = generator.GetSequence(0).ToArray().Skip(prompt.Length);
            Assert.Equal(eos ? tokens[..^1] : tokens, generated);
        }
    }
}
