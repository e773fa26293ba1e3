using System.Diagnostics;
using System.Reflection;
using System.Text;
using ModelCompression.Core.Tests.Safety.Probes.High;
using ModelCompression.Core.Tests.Safety.Probes.Low;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// Namespaces point one way. This test reads the metadata and IL of our assemblies (as <see cref="ScalarLifetimeTests"/>
/// does) and collects every type-to-type reference (<see cref="TypeReferenceCollector"/>): base types, interfaces,
/// fields, properties, signatures, generic arguments, locals, custom attributes (so <c>[Option]</c> counts) and the
/// methods, fields and types the IL names. Nested and compiler-generated types count as their outermost type.
/// <para>
/// Inside ModelCompression.Core every namespace has a rank (<see cref="CoreRanks"/>); a reference may point only to an
/// equal or lower rank, namespaces of equal rank must not form a cycle, and a Core namespace without a rank fails
/// the test. Between assemblies: Diagnostics uses nothing of ours, Onnx and Torch do not use Core, and the CLI does
/// not use ModelCompression.Torch.Training (it talks to the engine through Core's types).
/// </para>
/// <para>
/// <see cref="KnownViolations"/> was the ratchet that took the code there (issue 13 emptied it): the test fails on a
/// violating edge that is not listed, and on a listed edge that no longer violates. Keep it empty: fix the edge (move
/// the shared type down a layer) rather than list it.
/// </para>
/// <para>
/// Blind spots: the compiler inlines const fields (every <c>DiagnosticCodes.*</c>), enum literals in code, and
/// <c>nameof</c>, and doc comments' <c>cref</c>s leave nothing in the assembly, so none of these is seen. They are
/// compile-time dependencies only and cannot make a cycle at run time, but they still tie the source files together.
/// An enum-typed argument of an attribute is seen (metadata keeps the enum's type). A calli signature is not read, and
/// a token in generic code that its generic context cannot bind is skipped (<see cref="TokenOperand.Resolve"/>).
/// </para>
/// </summary>
public sealed class NamespaceDirectionTests(ITestOutputHelper output)
{
    private const string CoreAssembly = "ModelCompression.Core";
    private const string DiagnosticsAssembly = "ModelCompression.Diagnostics";
    private const string TorchTraining = "ModelCompression.Torch.Training";

    /// <summary>The layers of Core, lowest first. Everything outside Core (Diagnostics, Onnx, Torch, the BCL) is rank 0.</summary>
    private static readonly Dictionary<string, int> CoreRanks = new(StringComparer.Ordinal)
    {
        ["ModelCompression.Common"] = 1,
        ["ModelCompression.Data"] = 2,
        ["ModelCompression.Text"] = 2,
        ["ModelCompression.Inference"] = 3,
        ["ModelCompression.Architectures"] = 3,
        ["ModelCompression.Generation"] = 4,
        ["ModelCompression.Evaluation"] = 4,
        ["ModelCompression.Tasks"] = 4,
        ["ModelCompression.Training"] = 4,
        ["ModelCompression.Pruning"] = 5,
        ["ModelCompression.Quantization"] = 5,
        ["ModelCompression.Factorization"] = 5,
        ["ModelCompression.Gates"] = 5,
        ["ModelCompression.Teachers"] = 5,
        ["ModelCompression.Stages"] = 6,
        ["ModelCompression.Recipes"] = 7,
        ["ModelCompression.Pipeline"] = 8,
        ["ModelCompression.Reports"] = 9,
        ["ModelCompression.Runs"] = 10,
    };

    /// <summary>
    /// Edges that break a rule today ("From -> To", namespaces). Only ever delete from this list: the test fails when
    /// an entry no longer violates, and when a violation is not here.
    /// </summary>
    private static readonly string[] KnownViolations = [];

    private static readonly Lazy<Scan> Scanned = new(ScanOurAssemblies);

    private static readonly string ProbeLow = typeof(LayeringProbe).Namespace!;
    private static readonly string ProbeHigh = typeof(ProbeCallee).Namespace!;

    [Fact]
    public void Core_namespaces_point_down_the_layers()
    {
        var scan = Scanned.Value;
        output.WriteLine($"Scanned {scan.Types} types of {scan.Assemblies.Count} assemblies, {scan.References.Count} references, in {scan.Elapsed.TotalMilliseconds:0} ms.");
        var core = scan.Assemblies[CoreAssembly];
        var unranked = Layers.Unranked(core.GetTypes(), t => InCore(t, core), CoreRanks);
        Assert.True(unranked.Count == 0, $"Core namespaces without a rank: {string.Join(", ", unranked)}. Add each to CoreRanks in {nameof(NamespaceDirectionTests)} at the layer it belongs to.");

        var clock = Stopwatch.StartNew();
        var layers = Layers.Check(scan.References, t => InCore(t, core), CoreRanks);
        output.WriteLine($"Checked the layers in {clock.Elapsed.TotalMilliseconds:0} ms.");
        output.WriteLine(layers.DescribeCycles());
        var known = KnownViolations.Where(k => CoreRanks.ContainsKey(Source(k))).ToList();
        var problems = Ratchet(layers.Violations, known);
        Assert.True(problems.Length == 0, problems + layers.DescribeCycles());
    }

    [Fact]
    public void Assemblies_point_down_too()
    {
        var scan = Scanned.Value;
        var violations = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var reference in scan.References)
        {
            if (BreaksAssemblyRule(reference))
            {
                Layers.AddSite(violations, TypeReference.NamespaceOf(reference.Source), TypeReference.NamespaceOf(reference.Target), reference);
            }
        }

        var known = KnownViolations.Where(k => !CoreRanks.ContainsKey(Source(k))).ToList();
        var problems = Ratchet(violations, known);
        Assert.True(problems.Length == 0, problems);
    }

    [Fact]
    public void The_scan_finds_an_up_edge_of_every_kind()
    {
        var (references, layerOf) = ScanProbes();
        var layers = Layers.Check(references, layerOf, ProbeRanks(high: 2));

        var up = $"{ProbeLow} -> {ProbeHigh}";
        Assert.Equal([up], layers.Violations.Keys);
        var sites = layers.Violations[up];
        Assert.Contains("LayeringProbe.Count uses ProbeAttribute", sites);
        Assert.Contains("LayeringProbe.Count uses ProbeKind", sites);
        Assert.Contains("LayeringProbe._items uses ProbeFieldItem", sites);
        Assert.Contains("LayeringProbe.Take uses ProbeParameter", sites);
        Assert.Contains("LayeringProbe.Call uses ProbeCallee", sites);
        Assert.Contains("LayeringProbe.Token uses ProbeToken", sites);
        Assert.Contains("LayeringProbe+Derived.(base type) uses ProbeBase", sites);
        Assert.Contains(sites, s => s.StartsWith("LayeringProbe+<>c", StringComparison.Ordinal) && s.EndsWith(" uses ProbeInLambda", StringComparison.Ordinal));

        // The down-edge (ProbeBase.Owner) is fine, and the failure message names the up-edge's sites.
        Assert.Contains($"{ProbeHigh} -> {ProbeLow}", layers.Edges.Keys);
        var message = Ratchet(layers.Violations, []);
        Assert.Contains($"{up}: LayeringProbe.Call uses ProbeCallee", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Equal_ranks_must_not_form_a_cycle()
    {
        var (references, layerOf) = ScanProbes();
        var layers = Layers.Check(references, layerOf, ProbeRanks(high: 1));

        Assert.Equal([$"{ProbeHigh} -> {ProbeLow}", $"{ProbeLow} -> {ProbeHigh}"], layers.Violations.Keys.Order(StringComparer.Ordinal));
        var cycle = Assert.Single(layers.Cycles);
        Assert.Equal([ProbeHigh, ProbeLow], cycle);
        var cycles = layers.DescribeCycles();
        Assert.Contains($"{ProbeHigh}, {ProbeLow}", cycles, StringComparison.Ordinal);
        Assert.Contains($"{ProbeLow} -> {ProbeHigh} -> {ProbeLow}", cycles, StringComparison.Ordinal);
    }

    [Fact]
    public void The_known_list_only_shrinks()
    {
        var (references, layerOf) = ScanProbes();
        var layers = Layers.Check(references, layerOf, ProbeRanks(high: 2));
        var up = $"{ProbeLow} -> {ProbeHigh}";
        var down = $"{ProbeHigh} -> {ProbeLow}";

        Assert.Equal("", Ratchet(layers.Violations, [up]));
        var stale = Ratchet(layers.Violations, [up, down]);
        Assert.Contains($"\"{down}\"", stale, StringComparison.Ordinal);
        Assert.DoesNotContain($"\"{up}\"", stale, StringComparison.Ordinal);
        Assert.Contains($"{up}: ", Ratchet(layers.Violations, [down]), StringComparison.Ordinal);
    }

    [Fact]
    public void A_namespace_without_a_rank_is_named()
    {
        var (_, layerOf) = ScanProbes();
        var types = typeof(LayeringProbe).Assembly.GetTypes();

        Assert.Empty(Layers.Unranked(types, layerOf, ProbeRanks(high: 2)));
        Assert.Equal([ProbeHigh], Layers.Unranked(types, layerOf, new Dictionary<string, int>(StringComparer.Ordinal) { [ProbeLow] = 1 }));
    }

    private static Dictionary<string, int> ProbeRanks(int high) => new(StringComparer.Ordinal) { [ProbeLow] = 1, [ProbeHigh] = high };

    /// <summary>The probe namespaces of this test assembly, scanned the same way as the engine's assemblies.</summary>
    private static (List<TypeReference> References, Func<Type, string?> LayerOf) ScanProbes()
    {
        string? LayerOf(Type type) => TypeReference.NamespaceOf(type) is var ns && (ns == ProbeLow || ns == ProbeHigh) && type.Assembly == typeof(LayeringProbe).Assembly ? ns : null;
        var types = typeof(LayeringProbe).Assembly.GetTypes().Where(t => LayerOf(t) is not null);
        return (TypeReferenceCollector.Collect(types), LayerOf);
    }

    private static string? InCore(Type type, Assembly core) =>
        type.Assembly == core && !TypeReference.IsCompilerGenerated(TypeReference.Outermost(type)) ? TypeReference.NamespaceOf(type) : null;

    private static string Source(string edge) => Layers.Ends(edge).From;

    private static bool BreaksAssemblyRule(TypeReference reference)
    {
        var from = reference.Source.Assembly.GetName().Name;
        var to = reference.Target.Assembly.GetName().Name;
        if (from == to || !IsOurs(reference.Target.Assembly))
        {
            return false;
        }

        var ns = TypeReference.NamespaceOf(reference.Target);
        return from switch
        {
            DiagnosticsAssembly => true,
            "ModelCompression.Onnx" or "ModelCompression.Torch" => to == CoreAssembly,
            "dotnet-compress" => ns == TorchTraining || ns.StartsWith(TorchTraining + ".", StringComparison.Ordinal),
            _ => false,
        };
    }

    private static bool IsOurs(Assembly assembly) =>
        assembly.GetName().Name is { } name && (name == "dotnet-compress" || name.StartsWith("ModelCompression.", StringComparison.Ordinal));

    /// <summary>
    /// What the ratchet says of these violations against a known list: the violations not in the list, with their
    /// sites, and the list's entries that no longer violate. Empty when the two agree.
    /// </summary>
    private static string Ratchet(Dictionary<string, SortedSet<string>> violations, IReadOnlyCollection<string> known)
    {
        const int SitesPerEdge = 5;
        var text = new StringBuilder();
        var fresh = violations.Keys.Except(known, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (fresh.Count > 0)
        {
            text.AppendLine($"These references break the layering (see {nameof(NamespaceDirectionTests)}' summary). Move the type used to a lower layer, or the user to a higher one:");
            foreach (var edge in fresh)
            {
                var sites = violations[edge];
                foreach (var site in sites.Take(SitesPerEdge))
                {
                    text.AppendLine($"  {edge}: {site}");
                }

                if (sites.Count > SitesPerEdge)
                {
                    text.AppendLine($"  {edge}: … and {sites.Count - SitesPerEdge} more sites");
                }
            }
        }

        var stale = known.Except(violations.Keys, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (stale.Count > 0)
        {
            text.AppendLine($"These entries of {nameof(KnownViolations)} no longer break a rule: delete them from the list.");
            foreach (var edge in stale)
            {
                text.AppendLine($"  \"{edge}\",");
            }
        }

        return text.ToString();
    }

    private static Scan ScanOurAssemblies()
    {
        var clock = Stopwatch.StartNew();
        var assemblies = new[] { DiagnosticsAssembly, "ModelCompression.Onnx", "ModelCompression.Torch", CoreAssembly, "dotnet-compress" }
            .ToDictionary(n => n, n => Assembly.Load(new AssemblyName(n)), StringComparer.Ordinal);
        var types = assemblies.Values.SelectMany(a => a.GetTypes()).ToList();
        var references = TypeReferenceCollector.Collect(types);
        return new Scan(assemblies, types.Count, references, clock.Elapsed);
    }

    private sealed record Scan(Dictionary<string, Assembly> Assemblies, int Types, List<TypeReference> References, TimeSpan Elapsed);
}

/// <summary>
/// The namespace graph of one layered assembly and what breaks its ranks: edges to a higher rank, and edges
/// between equal ranks that lie on a cycle. <see cref="Cycles"/> lists every cycle of the whole graph (Tarjan's strongly
/// connected components), whatever the ranks.
/// </summary>
internal sealed class Layers
{
    private readonly Dictionary<string, SortedSet<string>> _graph;

    private Layers(Dictionary<string, SortedSet<string>> graph, Dictionary<string, SortedSet<string>> edges, Dictionary<string, SortedSet<string>> violations, List<List<string>> cycles)
    {
        _graph = graph;
        Edges = edges;
        Violations = violations;
        Cycles = cycles;
    }

    /// <summary>Every edge "From -> To" between two different ranked namespaces, with its sites.</summary>
    public Dictionary<string, SortedSet<string>> Edges { get; }

    /// <summary>The edges that break the ranks, with their sites.</summary>
    public Dictionary<string, SortedSet<string>> Violations { get; }

    /// <summary>Each cycle as its namespaces, sorted; the cycles sorted by their first namespace.</summary>
    public List<List<string>> Cycles { get; }

    /// <summary>Builds the graph of the references whose two ends <paramref name="layerOf"/> places, and checks it.</summary>
    /// <param name="references">All references found.</param>
    /// <param name="layerOf">A type's namespace when it belongs to the layered assembly, null otherwise (rank 0).</param>
    /// <param name="ranks">Each layered namespace's rank; namespaces missing here are left out (checked by the caller).</param>
    public static Layers Check(IEnumerable<TypeReference> references, Func<Type, string?> layerOf, IReadOnlyDictionary<string, int> ranks)
    {
        var edges = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        var graph = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var reference in references)
        {
            if (layerOf(reference.Source) is { } from && layerOf(reference.Target) is { } to && from != to && ranks.ContainsKey(from) && ranks.ContainsKey(to))
            {
                AddSite(edges, from, to, reference);
                Successors(graph, from).Add(to);
            }
        }

        var sameRank = graph.ToDictionary(
            g => g.Key,
            g => new SortedSet<string>(g.Value.Where(to => ranks[to] == ranks[g.Key]), StringComparer.Ordinal),
            StringComparer.Ordinal);
        var sameRankCycles = StronglyConnected(sameRank);
        var violations = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (from, targets) in graph)
        {
            foreach (var to in targets)
            {
                if (ranks[to] > ranks[from] || sameRankCycles.Any(c => c.Contains(from) && c.Contains(to)))
                {
                    var key = Edge(from, to);
                    violations[key] = edges[key];
                }
            }
        }

        return new Layers(graph, edges, violations, StronglyConnected(graph));
    }

    /// <summary>The namespaces, sorted, that <paramref name="layerOf"/> places some of these types in and that have no rank.</summary>
    public static List<string> Unranked(IEnumerable<Type> types, Func<Type, string?> layerOf, IReadOnlyDictionary<string, int> ranks) =>
        [.. types.Select(layerOf).OfType<string>().Where(ns => !ranks.ContainsKey(ns)).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>Records one site of the edge from -> to.</summary>
    public static void AddSite(Dictionary<string, SortedSet<string>> edges, string from, string to, TypeReference reference)
    {
        var key = Edge(from, to);
        if (!edges.TryGetValue(key, out var sites))
        {
            edges[key] = sites = new SortedSet<string>(StringComparer.Ordinal);
        }

        sites.Add(reference.Site);
    }

    /// <summary>
    /// Each cycle's namespaces, then, for every edge inside it that breaks the ranks, the shortest way round back to
    /// where the edge starts: the loop that edge closes. A line saying there are none when there are none.
    /// </summary>
    public string DescribeCycles()
    {
        if (Cycles.Count == 0)
        {
            return "No namespace cycles.";
        }

        var text = new StringBuilder($"{Cycles.Count} namespace cycle(s) (strongly connected namespaces):{Environment.NewLine}");
        foreach (var cycle in Cycles)
        {
            text.AppendLine($"  {string.Join(", ", cycle)}");
            foreach (var edge in Violations.Keys.Order(StringComparer.Ordinal))
            {
                var (from, to) = Ends(edge);
                if (cycle.Contains(from) && cycle.Contains(to))
                {
                    text.AppendLine($"    {from} -> {string.Join(" -> ", ShortestPath(to, from, cycle))}");
                }
            }
        }

        return text.ToString();
    }

    /// <summary>The namespaces on a shortest path from one namespace to another inside a cycle, both ends included.</summary>
    private List<string> ShortestPath(string start, string goal, List<string> within)
    {
        var cameFrom = new Dictionary<string, string>(StringComparer.Ordinal) { [start] = start };
        var queue = new Queue<string>([start]);
        while (queue.Count > 0 && !cameFrom.ContainsKey(goal))
        {
            var node = queue.Dequeue();
            foreach (var next in _graph.TryGetValue(node, out var successors) ? successors : [])
            {
                if (within.Contains(next) && cameFrom.TryAdd(next, node))
                {
                    queue.Enqueue(next);
                }
            }
        }

        var path = new List<string> { goal };
        while (path[^1] != start)
        {
            path.Add(cameFrom[path[^1]]);
        }

        path.Reverse();
        return path;
    }

    /// <summary>The two namespaces of an edge written "From -> To".</summary>
    public static (string From, string To) Ends(string edge)
    {
        var arrow = edge.IndexOf(" -> ", StringComparison.Ordinal);
        return (edge[..arrow], edge[(arrow + 4)..]);
    }

    private static string Edge(string from, string to) => $"{from} -> {to}";

    private static SortedSet<string> Successors(Dictionary<string, SortedSet<string>> graph, string node)
    {
        if (!graph.TryGetValue(node, out var successors))
        {
            graph[node] = successors = new SortedSet<string>(StringComparer.Ordinal);
        }

        return successors;
    }

    /// <summary>Tarjan's algorithm: the strongly connected components of more than one node.</summary>
    private static List<List<string>> StronglyConnected(Dictionary<string, SortedSet<string>> graph)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var components = new List<List<string>>();
        var visited = 0;

        void Visit(string node)
        {
            index[node] = visited;
            low[node] = visited;
            visited++;
            stack.Push(node);
            onStack.Add(node);
            foreach (var next in graph.TryGetValue(node, out var successors) ? successors : [])
            {
                if (!index.ContainsKey(next))
                {
                    Visit(next);
                    low[node] = Math.Min(low[node], low[next]);
                }
                else if (onStack.Contains(next))
                {
                    low[node] = Math.Min(low[node], index[next]);
                }
            }

            if (low[node] == index[node])
            {
                var component = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    component.Add(member);
                }
                while (member != node);

                if (component.Count > 1)
                {
                    components.Add([.. component.Order(StringComparer.Ordinal)]);
                }
            }
        }

        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (!index.ContainsKey(node))
            {
                Visit(node);
            }
        }

        return [.. components.OrderBy(c => c[0], StringComparer.Ordinal)];
    }
}
