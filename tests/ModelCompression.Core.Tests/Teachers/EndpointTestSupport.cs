using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>Prompts, options and a recording retry wait for the endpoint teacher's tests.</summary>
internal static partial class EndpointTestSupport
{
    public static readonly GenerativeTask MathTask = new(GenerativeTaskType.Math);

    /// <summary>"What is k plus k?" for each k, as pool records of pool.jsonl (line i + 1).</summary>
    public static IReadOnlyList<ChatRecord> MathPrompts(params int[] numbers) =>
        [.. numbers.Select((k, i) => new ChatRecord([new ChatMessage(ChatRole.User, Question(k))], "pool.jsonl", i + 1))];

    public static string Question(int k) => string.Create(CultureInfo.InvariantCulture, $"What is {k} plus {k}?");

    /// <summary>The k of a math request's last message.</summary>
    public static int NumberOf(ScriptedRequest request) => int.Parse(QuestionNumber().Match(request.LastMessage).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>A right answer in GSM8K's convention.</summary>
    public static string RightAnswer(int k) => string.Create(CultureInfo.InvariantCulture, $"{k} + {k} = {2 * k}\n#### {2 * k}");

    /// <summary>Options for the scripted server: tiny retry delays, a short timeout.</summary>
    public static EndpointTeacherOptions Options(ScriptedChatServer server) => new()
    {
        Endpoint = server.BaseUrl,
        Model = "teacher-model",
        MaxRetries = 3,
        RetryDelaySeconds = 0.001,
        RetryMaxDelaySeconds = 0.01,
        TimeoutSeconds = 5,
    };

    /// <summary>Answers as comparable values (a ChatRecord's message list compares by reference).</summary>
    public static IReadOnlyList<string> Flat(IEnumerable<TeacherAnswer> answers) =>
        [.. answers.Select(a => string.Create(CultureInfo.InvariantCulture, $"{a.Record.Location} #{a.Sample}: ") + string.Join(" | ", a.Record.Messages.Select(m => $"{m.Role}{(m.Trained ? "" : " (weight 0)")}: {m.Content}")))];

    [GeneratedRegex(@"What is (\d+) plus")]
    private static partial Regex QuestionNumber();
}

/// <summary>A retry wait that records each delay and does not wait.</summary>
internal sealed class RecordedWaits
{
    private readonly List<TimeSpan> _delays = [];

    public IReadOnlyList<TimeSpan> Delays
    {
        get
        {
            lock (_delays)
            {
                return [.. _delays];
            }
        }
    }

    public Task Wait(TimeSpan delay, CancellationToken cancellationToken)
    {
        lock (_delays)
        {
            _delays.Add(delay);
        }

        return Task.CompletedTask;
    }
}

/// <summary>An IProgress that calls back synchronously (Progress&lt;T&gt; posts to the thread pool, too late to cancel in step).</summary>
internal sealed class SyncProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
{
    public void Report((int Done, int Total) value) => report(value);
}
