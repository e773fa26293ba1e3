using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Text;

namespace ModelCompression.Serving.Tests;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Join(System.IO.Path.GetTempPath(), "mc-serving-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Join(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort on shared machines.
        }
    }
}

/// <summary>
/// Real generative model folders made from the PyTorch decoder of tests/fixtures/decoder (a GPT-2-style byte model
/// trained on short templated texts: "The red fox" continues " jumps over the lazy dog." and ends): one that continues
/// plain text, and one with a chat template (markers written as plain text, so the fixture's 257-id vocabulary fits).
/// </summary>
internal static class Folders
{
    public const int EndOfText = 256;

    public static readonly ChatTemplateOptions Template = new()
    {
        System = "{content}\n",
        User = "{content}",
        Assistant = " {content}<|endoftext|>",
        GenerationPrompt = " ",
        Markers = [],
    };

    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (System.IO.File.Exists(Path.Join(dir.FullName, "tests", "fixtures", "decoder", "byte_decoder.onnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root above {AppContext.BaseDirectory}.");
    });

    /// <summary>The fixture's decoder with its cache inputs.</summary>
    public static string Decoder => Path.Join(RootPath.Value, "tests", "fixtures", "decoder", "byte_decoder.onnx");

    public static GenerationTokenizer ByteTokenizer() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));

    /// <summary>A folder "text" under <paramref name="dir"/> that continues plain text: greedy, up to 40 new tokens, ending at end of text.</summary>
    public static string Text(TempDir dir, string name = "text")
    {
        var folder = dir.File(name);
        GenerativeModelFolder.Write(folder, Decoder, ByteTokenizer(), chatTemplate: null, new GenerationOptions { MaxNewTokens = 40, StopTokenIds = [EndOfText] });
        return folder;
    }

    /// <summary>
    /// A folder "untrained" under <paramref name="dir"/> from a seeded, untrained built-in decoder over the same 257 byte
    /// ids: its logits are near uniform, so sampling settings and penalties visibly change its answers.
    /// </summary>
    public static string Untrained(TempDir dir)
    {
        var model = dir.File("untrained.onnx");
        var options = new DecoderOptions { VocabSize = 257, MaxLength = 64, Width = 16, Heads = 2, Layers = 1, FeedForward = 32, Dropout = 0, Seed = 11 };
        OnnxModelFile.Save(DecoderBuilder.Build(options, new ArchitectureInputs([0], 1)), model);
        var folder = dir.File("untrained");
        GenerativeModelFolder.Write(folder, model, ByteTokenizer(), chatTemplate: null, new GenerationOptions { MaxNewTokens = 16, StopTokenIds = [EndOfText] });
        return folder;
    }

    /// <summary>A folder "chat" under <paramref name="dir"/> with <see cref="Template"/>: greedy, up to 32 new tokens.</summary>
    public static string Chat(TempDir dir, string name = "chat")
    {
        var folder = dir.File(name);
        GenerativeModelFolder.Write(folder, Decoder, ByteTokenizer(), Template, new GenerationOptions { MaxNewTokens = 32, StopTokenIds = [EndOfText] });
        return folder;
    }
}

/// <summary>Raw HTTP against a running server: JSON in, status and JSON out.</summary>
internal static class Http
{
    public static HttpClient Client(RunningServer server, string? key = null, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = server.BaseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<(int Status, JsonElement Body)> Post(HttpClient client, string path, string json)
    {
        using var response = await client.PostAsync(path, Json(json));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<(int Status, JsonElement Body)> Get(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>The <c>data:</c> payloads of a server-sent event stream, [DONE] included.</summary>
    public static async Task<List<string>> Events(HttpClient client, string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
            else
            {
                Assert.Equal(string.Empty, line);
            }
        }

        return events;
    }

    /// <summary>The error object of an error body, checked for OpenAI's four fields.</summary>
    public static JsonElement Error(JsonElement body)
    {
        var error = body.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("param", out _));
        Assert.Equal(JsonValueKind.String, error.GetProperty("code").ValueKind);
        return error;
    }
}
