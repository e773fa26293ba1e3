using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;

namespace ModelCompression.Cli;

/// <summary>
/// <c>dotnet compress cache ls | stats | prune | push | pull</c>: the stage cache from outside a run. The local folder is
/// <c>--cache</c>, else the recipe's default one; the remote cache is <c>--remote-cache</c>, else the recipe's
/// <c>cache.remote</c>. ls, stats and prune look at the local folder, or at the remote cache with <c>--remote</c>; push
/// uploads the local entries the remote lacks, pull fetches the remote entries the folder lacks. Every entry pushed or
/// pulled is checked against its manifest first, as a run checks it.
/// </summary>
internal static partial class CacheCommand
{
    public static Command Create()
    {
        var command = new Command("cache", "Look at, prune, push and pull the stage cache (a local folder and the remote cache behind it).");
        command.Add(Verb("ls", "List the entries: kind, key, size, last used (local) or published (remote).", remoteChoice: true, (where, _) => List(where)));
        command.Add(Verb("stats", "Entries and bytes by kind of entry.", remoteChoice: true, (where, _) => Stats(where)));
        var maxSize = new Option<long?>("--max-size")
        {
            Description = "Remove the least recently used entries until the cache holds at most this much: 500MB, 5GB, 1.5TB (powers of 1000; KiB, MiB, GiB, TiB for 1024).",
            HelpName = "size",
            CustomParser = result => ParseOrError(result, ParseSize, "--max-size takes a size such as 500MB or 5GB"),
        };
        var olderThan = new Option<TimeSpan?>("--older-than")
        {
            Description = "Remove the entries not used (local) or published (remote) for longer than this: 30d, 12h, 2w, 90m.",
            HelpName = "age",
            CustomParser = result => ParseOrError(result, ParseAge, "--older-than takes an age such as 30d, 12h or 2w"),
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Say what would be removed; remove nothing." };
        var prune = Verb("prune", "Remove old entries, least recently used first, and what killed runs left.", remoteChoice: true, (where, parse) => Prune(where, parse.GetValue(maxSize), parse.GetValue(olderThan), parse.GetValue(dryRun)));
        prune.Add(maxSize);
        prune.Add(olderThan);
        prune.Add(dryRun);
        prune.Validators.Add(result =>
        {
            if (result.GetResult(maxSize) is null && result.GetResult(olderThan) is null)
            {
                result.AddError("cache prune needs --max-size, --older-than or both.");
            }
        });
        command.Add(prune);
        command.Add(Verb("push", "Upload the local entries the remote cache lacks (each checked first).", remoteChoice: false, (where, _) => Push(where)));
        command.Add(Verb("pull", "Fetch the remote entries the local folder lacks (each checked before it is kept).", remoteChoice: false, (where, _) => Pull(where)));
        return command;
    }

    /// <summary>A verb with the options every verb takes: the recipe, --cache, the remote cache's three and, for ls/stats/prune, --remote.</summary>
    private static Command Verb(string name, string description, bool remoteChoice, Func<CacheTarget, ParseResult, int> action)
    {
        var recipe = new Argument<FileInfo?>("recipe") { Description = "A recipe: its default cache folder and its 'cache:' section.", Arity = ArgumentArity.ZeroOrOne };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "The local cache folder (default: the recipe's, under $XDG_CACHE_HOME/modelcompression or ~/.cache/modelcompression)." };
        var remoteOptions = new RemoteCacheCommandLine();
        var remote = new Option<bool>("--remote") { Description = "Work on the remote cache instead of the local folder." };
        var command = new Command(name, description) { recipe, cache };
        foreach (var option in remoteOptions.All)
        {
            command.Add(option);
        }

        if (remoteChoice)
        {
            command.Add(remote);
        }

        command.SetAction(parse => CompressCommand.Guard(() =>
        {
            var loaded = parse.GetValue(recipe) is { } file ? RecipeLoader.Load(file.FullName) : null;
            var folder = parse.GetValue(cache)?.FullName ?? (loaded is null ? null : ArtifactCache.DefaultRoot(loaded.Path));
            var settings = RemoteCacheOptions.Resolve(loaded?.Cache, remoteOptions.Bind(parse));
            var useRemote = remoteChoice && parse.GetValue(remote);
            if (folder is null && !useRemote)
            {
                Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, $"cache {name}: give a recipe or --cache to name the local cache folder."));
                return ExitCodes.Usage;
            }

            if (settings is null && (useRemote || !remoteChoice))
            {
                Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, $"cache {name}: give --remote-cache, or a recipe with 'cache: {{ remote: … }}', to name the remote cache."));
                return ExitCodes.Usage;
            }

            var target = new CacheTarget(folder, settings, useRemote);
            try
            {
                return action(target, parse);
            }
            catch (CacheStoreUnavailableException e)
            {
                Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.RemoteCacheUnavailable, target.Redact(e.Message) + "."));
                return ExitCodes.Error;
            }
        }));
        return command;
    }

    private static int List(CacheTarget target)
    {
        var (where, entries) = target.Entries();
        foreach (var entry in entries.OrderByDescending(e => e.LastUsedUtc).ThenBy(e => e.Kind, StringComparer.Ordinal))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{entry.Kind,-20} {entry.Key}  {CacheSummary.Size(entry.Bytes),10}  {entry.LastUsedUtc.UtcDateTime:yyyy-MM-dd HH:mm:ss}"));
        }

        Console.WriteLine($"{entries.Count} entries, {CacheSummary.Size(entries.Sum(e => e.Bytes))} in {where}");
        return ExitCodes.Ok;
    }

    private static int Stats(CacheTarget target)
    {
        var (where, entries) = target.Entries();
        Console.WriteLine($"{where}: {entries.Count} entries, {CacheSummary.Size(entries.Sum(e => e.Bytes))}");
        if (entries.Count > 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"last used or published: {entries.Min(e => e.LastUsedUtc).UtcDateTime:yyyy-MM-dd HH:mm} to {entries.Max(e => e.LastUsedUtc).UtcDateTime:yyyy-MM-dd HH:mm} UTC"));
        }

        Console.WriteLine($"{"kind",-20} {"entries",8} {"size",10}");
        foreach (var kind in entries.GroupBy(e => e.Kind).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kind.Key,-20} {kind.Count(),8} {CacheSummary.Size(kind.Sum(e => e.Bytes)),10}"));
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// Removes entries unused for longer than <paramref name="olderThan"/>, then the least recently used until at most
    /// <paramref name="maxSize"/> bytes are left; in a local folder also the temporary folders killed runs left.
    /// </summary>
    private static int Prune(CacheTarget target, long? maxSize, TimeSpan? olderThan, bool dryRun)
    {
        var (where, entries) = target.Entries();
        var now = DateTimeOffset.UtcNow;
        var kept = entries.OrderBy(e => e.LastUsedUtc).ToList();
        var removed = new List<(CacheStoreEntry Entry, string Why)>();
        if (olderThan is { } age)
        {
            removed.AddRange(kept.Where(e => now - e.LastUsedUtc > age).Select(e => (e, $"not used for {Math.Floor((now - e.LastUsedUtc).TotalDays)} days")));
            kept.RemoveAll(e => now - e.LastUsedUtc > age);
        }

        while (maxSize is { } limit && kept.Count > 0 && kept.Sum(e => e.Bytes) > limit)
        {
            removed.Add((kept[0], "least recently used over --max-size"));
            kept.RemoveAt(0);
        }

        foreach (var (entry, why) in removed)
        {
            Console.WriteLine($"{(dryRun ? "would remove" : "removed")} {entry.Kind}-{entry.Key} ({CacheSummary.Size(entry.Bytes)}): {why}");
            if (!dryRun)
            {
                target.Delete(entry);
            }
        }

        if (!dryRun)
        {
            foreach (var leftover in target.RemoveLeftovers())
            {
                Console.WriteLine($"removed {leftover}, left by a run that was stopped");
            }
        }

        Console.WriteLine($"{(dryRun ? "Would remove" : "Removed")} {removed.Count} entries ({CacheSummary.Size(removed.Sum(r => r.Entry.Bytes))}) from {where}; {kept.Count} entries ({CacheSummary.Size(kept.Sum(e => e.Bytes))}) kept.");
        return ExitCodes.Ok;
    }

    private static int Push(CacheTarget target)
    {
        var store = target.OpenRemote();
        var (pushed, present, damaged, bytes) = (0, 0, 0, 0L);
        foreach (var entry in FolderCacheStore.ListFolder(target.Folder!))
        {
            var folder = Path.Combine(target.Folder!, CacheEntryName.Of(entry.Kind, entry.Key));
            if (CacheManifest.Problem(folder, entry.Kind, entry.Key) is { } problem)
            {
                damaged++;
                Console.Error.WriteLine(Diagnostic.Warning(DiagnosticCodes.CacheEntryDamaged, $"Not pushed: the entry is damaged: {problem}.", folder));
                continue;
            }

            var published = store.Publish(entry.Kind, entry.Key, folder, null);
            (pushed, present, bytes) = published.Published ? (pushed + 1, present, bytes + published.Bytes) : (pushed, present + 1, bytes);
        }

        Console.WriteLine($"Pushed {pushed} entries ({CacheSummary.Size(bytes)}) to {store.Location}; {present} were there already{(damaged > 0 ? $"; {damaged} damaged, not pushed" : string.Empty)}.");
        return ExitCodes.Ok;
    }

    private static int Pull(CacheTarget target)
    {
        var reporter = new StderrReporter();
        var remote = new RemoteCache(target.OpenRemote(), RemoteCacheMode.Read, reporter);
        var cache = new ArtifactCache(target.Folder!, remote, reporter);
        var (pulled, present, failed) = (0, 0, 0);
        foreach (var entry in remote.Store.List())
        {
            // The local folder first, as in a run: an entry it has whole is not fetched again.
            cache.TryGet(entry.Kind, entry.Key);
            switch (cache.UseOf(entry.Kind, entry.Key)?.Source)
            {
                case CacheSource.Local:
                    present++;
                    break;
                case CacheSource.Remote:
                    pulled++;
                    break;
                default:
                    if (!remote.Available)
                    {
                        // Said on stderr as it happened.
                        return ExitCodes.Error;
                    }

                    failed++;
                    break;
            }
        }

        var down = cache.Summary().Total.BytesDown;
        Console.WriteLine($"Pulled {pulled} entries ({CacheSummary.Size(down)}) from {remote.Store.Location} into {cache.Root}; {present} were here already{(failed > 0 ? $"; {failed} damaged or gone, not pulled" : string.Empty)}.");
        return ExitCodes.Ok;
    }

    /// <summary>"500MB", "5GB", "1.5 TiB", "1024" (bytes) as bytes; null when it is not a size.</summary>
    internal static long? ParseSize(string text)
    {
        var match = SizePattern().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return null;
        }

        var unit = match.Groups[2].Value.ToUpperInvariant();
        var power = unit.Length == 0 || unit == "B" ? 0 : "KMGT".IndexOf(unit[0], StringComparison.Ordinal) + 1;
        var bytes = number * Math.Pow(unit.Contains('I', StringComparison.Ordinal) ? 1024 : 1000, power);
        return bytes < long.MaxValue ? (long)bytes : null;
    }

    /// <summary>"30d", "12h", "2w", "90m", "45s" as a time span; null when it is not an age.</summary>
    internal static TimeSpan? ParseAge(string text)
    {
        var match = AgePattern().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return null;
        }

        return match.Groups[2].Value switch
        {
            "s" => TimeSpan.FromSeconds(number),
            "m" => TimeSpan.FromMinutes(number),
            "h" => TimeSpan.FromHours(number),
            "d" => TimeSpan.FromDays(number),
            _ => TimeSpan.FromDays(7 * number),
        };
    }

    private static T? ParseOrError<T>(System.CommandLine.Parsing.ArgumentResult result, Func<string, T?> parse, string expected)
        where T : struct
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
        if (parse(text) is { } value)
        {
            return value;
        }

        result.AddError($"{expected}, not '{text}'.");
        return null;
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*((?:[KMGT]I?)?B)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)([smhdw])$", RegexOptions.CultureInvariant)]
    private static partial Regex AgePattern();

    /// <summary>What a cache verb works on: the local folder, the remote cache, and which of them ls, stats and prune look at.</summary>
    private sealed class CacheTarget(string? folder, RemoteCacheSettings? remote, bool useRemote)
    {
        private ICacheStore? _store;
        private SecretRedactor _redactor = SecretRedactor.None;

        public string? Folder => folder;

        public string Redact(string text) => _redactor.Redact(text);

        /// <summary>The remote store, or a CacheStoreUnavailableException when its credential is missing or malformed (said on stderr).</summary>
        public ICacheStore OpenRemote()
        {
            if (_store is null)
            {
                _store = remote!.Open(new StderrReporter(), out _redactor)
                    ?? throw new CacheStoreUnavailableException($"The remote cache {remote.Location} cannot be opened (see above)");
            }

            return _store;
        }

        public (string Where, IReadOnlyList<CacheStoreEntry> Entries) Entries() =>
            useRemote ? (OpenRemote().Location, OpenRemote().List()) : (folder!, FolderCacheStore.ListFolder(folder!));

        public void Delete(CacheStoreEntry entry)
        {
            if (useRemote)
            {
                OpenRemote().Delete(entry.Kind, entry.Key);
            }
            else
            {
                FolderCacheStore.DeleteEntry(folder!, CacheEntryName.Of(entry.Kind, entry.Key));
            }
        }

        /// <summary>
        /// What stopped runs left: in a local folder, temporary folders of processes no longer running; in a shared
        /// folder, those a day old (a writer on another machine may own a younger one).
        /// </summary>
        public IReadOnlyList<string> RemoveLeftovers() =>
            !useRemote ? new ArtifactCache(folder!).RemoveStaleTemporaries()
            : OpenRemote() is FolderCacheStore shared ? shared.RemoveLeftovers(TimeSpan.FromDays(1))
            : [];
    }

    /// <summary>Diagnostics of a cache verb, on stderr.</summary>
    private sealed class StderrReporter : IPipelineReporter
    {
        public void StageStarted(string stage, bool cached)
        {
        }

        public void Training(string stage, TrainingProgressInfo progress)
        {
        }

        public void Info(string message) => Console.Error.WriteLine(message);

        public void Report(Diagnostic diagnostic) => Console.Error.WriteLine(diagnostic);
    }
}
