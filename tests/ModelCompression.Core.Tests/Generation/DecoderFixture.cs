using System.Text.Json;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// The PyTorch decoder of tests/fixtures/decoder (make_decoder_fixture.py): its two exports and what PyTorch computed
/// with it (byte_decoder.expected.json), read once.
/// </summary>
internal static class DecoderFixture
{
    public const int Eos = 256;

    private static readonly Lazy<JsonElement> Json = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Join(Folder, "byte_decoder.expected.json"))).RootElement);

    public static string Folder => Path.Join(Repo.Root, "tests", "fixtures", "decoder");

    /// <summary>The export with cache inputs and present outputs.</summary>
    public static string Cached => Path.Join(Folder, "byte_decoder.onnx");

    /// <summary>The export without cache inputs.</summary>
    public static string NoCache => Path.Join(Folder, "byte_decoder_nocache.onnx");

    public static JsonElement Expected => Json.Value;

    /// <summary>PyTorch's greedy cases: prompt, tokens (eos included when it stopped there), whether it stopped on eos.</summary>
    public static IReadOnlyList<(int[] Prompt, int[] Tokens, bool Eos)> Greedy =>
    [
        .. Expected.GetProperty("greedy").GetProperty("cases").EnumerateArray().Select(c => (
            Ints(c.GetProperty("prompt")),
            Ints(c.GetProperty("tokens")),
            c.GetProperty("eos").GetBoolean())),
    ];

    public static int GreedyMaxNewTokens => Expected.GetProperty("greedy").GetProperty("max_new_tokens").GetInt32();

    public static int[] Bytes(string text) => [.. System.Text.Encoding.UTF8.GetBytes(text).Select(b => (int)b)];

    public static string Text(IEnumerable<int> tokens) => System.Text.Encoding.UTF8.GetString([.. tokens.Where(t => t < 256).Select(t => (byte)t)]);

    public static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    public static long[] Longs(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt64())];

    public static float[] Floats(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetSingle())];
}
