using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Data;

namespace ModelCompression.Pipeline;

/// <summary>
/// The data's hash: part of every stage's, evaluation's and teacher output's cache key, and recorded in baseline files,
/// whose paired gates compare it. It carries no engine version, so it must stay byte for byte what it is (a golden
/// test pins it): a change would silently stop a committed baseline's '(significant)' gates from pairing.
/// </summary>
internal static class DataHashing
{
    /// <summary>
    /// Hash of every data option and every data file's name and contents (not its folder: moving a checkout
    /// keeps the cache), so any change to what the stages see invalidates their cached outputs.
    /// </summary>
    internal static string HashData(DataSpec data)
    {
        var (hash, files) = HashDataCore(data);
        foreach (var (label, file) in files)
        {
            hash.AddFile(label, file);
        }

        return hash.Finish();
    }

    /// <summary>
    /// <see cref="HashData(DataSpec)"/>, remembered in <paramref name="hashes"/> under the data options: computed
    /// again when an option or any data file changes.
    /// </summary>
    internal static string HashData(DataSpec data, HashMemo hashes)
    {
        var (options, files) = HashDataCore(data);
        var key = options.Add("files", string.Join("\n", files.Select(f => $"{f.Label}={Path.GetFullPath(f.Path)}"))).Finish();
        return hashes.Get($"data {key}", () => (HashData(data), [.. files.Select(f => f.Path)]));
    }

    /// <summary>The hash of every data option, and the data files (with their labels) that follow it in the hash.</summary>
    private static (ContentHash Options, List<(string Label, string Path)> Files) HashDataCore(DataSpec data)
    {
        var files = new List<(string Label, string Path)>();
        var json = new System.Text.Json.JsonSerializerOptions { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        var hash = new ContentHash()
            .Add("format", data.Format)
            .Add("scale", data.Scale.ToString("R", CultureInfo.InvariantCulture))
            .Add("split", System.Text.Json.JsonSerializer.Serialize(data.Split, json))
            .Add("normalize", System.Text.Json.JsonSerializer.Serialize(data.Normalize, json))
            .Add("csv", System.Text.Json.JsonSerializer.Serialize(data.Csv, json))
            .Add("npz", System.Text.Json.JsonSerializer.Serialize(data.Npz, json))
            .Add("classes", System.Text.Json.JsonSerializer.Serialize(data.Classes, json));
        if (data.Text is { } text)
        {
            var tokenizer = text.Tokenizer with { Source = text.Tokenizer.Kind == TokenizerKind.Tiktoken ? text.Tokenizer.Source : Path.GetFileName(text.Tokenizer.Source) };
            hash.Add("text", System.Text.Json.JsonSerializer.Serialize(text with { Tokenizer = tokenizer }, json))
                .Add("tokenizers", typeof(Microsoft.ML.Tokenizers.Tokenizer).Assembly.GetName().Version?.ToString() ?? "");
            if (text.Tokenizer.Kind != TokenizerKind.Tiktoken)
            {
                files.Add(("tokenizer", text.Tokenizer.Source));
            }
        }

        foreach (var (role, split) in new[] { ("file", data.File), ("train", data.Train), ("test", data.Test), ("validation", data.Validation), ("unlabelled", data.Unlabelled) })
        {
            if (split is null)
            {
                continue;
            }

            foreach (var (name, file) in split.InputFiles())
            {
                files.Add(($"{role}.{name}:{Path.GetFileName(file)}", file));
            }

            if (split.Labels is { } labels)
            {
                files.Add(($"{role}.labels:{Path.GetFileName(labels)}", labels));
            }
        }

        return (hash, files);
    }
}
