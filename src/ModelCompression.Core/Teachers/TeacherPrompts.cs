using System.Globalization;
using ModelCompression.Evaluation;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>
/// How the prompts of a pool are put to an endpoint teacher: which answers are asked for, and the messages of each
/// request.
/// <para>
/// <b>Which answers.</b> For the conversation task the teacher rewrites every trained assistant turn of a record (one
/// request per turn, with the conversation up to it) and answers a final user turn; an assistant turn with OpenAI's
/// <c>"weight": 0</c> is context and stays. Each request sees the record's own earlier turns, not the teacher's rewrites
/// of them, so the requests of a record are independent: they run concurrently and each is cached on its own. For the
/// other tasks only the final answer is asked for (a record's own final answer, if it has one, is replaced), as the
/// local teacher does.
/// </para>
/// <para>
/// <b>Messages.</b> A record's own system message is sent as it is; a record without one gets
/// <see cref="EndpointTeacherOptions.SystemPrompt"/> when it is set. The last user message goes through the prompt
/// template (<see cref="EndpointTeacherOptions.PromptTemplate"/>, or <see cref="DefaultTemplate"/> of the task), and with
/// chain of thought <see cref="ChainOfThoughtInstruction"/> is appended to it. The earlier messages go as they are.
/// </para>
/// </summary>
public static class TeacherPrompts
{
    /// <summary>Where a template puts the prompt's text.</summary>
    public const string ContentPlaceholder = "{content}";

    /// <summary>
    /// The task's default template of the last user message: math asks for steps and a final <c>#### n</c> line (the
    /// parser's convention), NLI for exactly one of the label words, QA for the shortest answering span, summarization for
    /// one short sentence, conversation sends the message as it is.
    /// </summary>
    public static string DefaultTemplate(GenerativeTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return task.Type switch
        {
            GenerativeTaskType.Math => "{content}\n\nSolve the problem step by step. End with a last line of the form '#### <number>' holding the final answer as a plain number.",
            GenerativeTaskType.Nli => "{content}\n\nAnswer with exactly one word: " + LabelList(task) + ".",
            GenerativeTaskType.Qa => "{content}\n\nAnswer with the shortest span of the text that answers the question, and nothing else.",
            GenerativeTaskType.Summarization => "{content}\n\nSummarize the text above in one short sentence, and write nothing else.",
            _ => ContentPlaceholder,
        };
    }

    /// <summary>What chain of thought appends to the last user message: reason in at most <paramref name="words"/> words, reply with the JSON object only.</summary>
    public static string ChainOfThoughtInstruction(int words) =>
        string.Create(CultureInfo.InvariantCulture, $"\n\nThink it through in at most {words} words first. Reply with only a JSON object and no other text: {{\"reason\": \"your reasoning\", \"answer\": \"your final answer, in the form asked for above\"}}");

    /// <summary>
    /// The answers to ask for <paramref name="record"/>: the indices of the messages the teacher's answers replace, with
    /// <c>record.Messages.Count</c> standing for an answer appended after a final user turn. See the class remarks.
    /// </summary>
    public static IReadOnlyList<int> AnswerSlots(ChatRecord record, GenerativeTask task)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(task);
        var messages = record.Messages;
        var slots = new List<int>();
        if (task.Type == GenerativeTaskType.Conversation)
        {
            for (var i = 0; i < messages.Count; i++)
            {
                if (messages[i].Role == ChatRole.Assistant && messages[i].Trained)
                {
                    slots.Add(i);
                }
            }

            if (messages.Count > 0 && messages[^1].Role == ChatRole.User)
            {
                slots.Add(messages.Count);
            }
        }
        else
        {
            slots.Add(record.HasAnswer ? messages.Count - 1 : messages.Count);
        }

        foreach (var slot in slots)
        {
            // The reader lets user and assistant turns alternate from a user turn, so this holds for read data.
            if (slot == 0 || messages[slot - 1].Role != ChatRole.User)
            {
                throw new ArgumentException($"The record at {record.Location} has an answer to ask for that does not follow a user message.", nameof(record));
            }
        }

        return slots;
    }

    /// <summary>The messages sent to ask for the answer at <paramref name="slot"/> of <paramref name="record"/> (see <see cref="AnswerSlots"/>).</summary>
    public static IReadOnlyList<ChatMessage> RequestMessages(ChatRecord record, int slot, GenerativeTask task, EndpointTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        var context = record.Messages.Take(slot).ToList();
        var sent = new List<ChatMessage>(context.Count + 1);
        if (options.SystemPrompt is { } system && (context.Count == 0 || context[0].Role != ChatRole.System))
        {
            sent.Add(new ChatMessage(ChatRole.System, system));
        }

        var template = options.PromptTemplate ?? DefaultTemplate(task);
        for (var i = 0; i < context.Count; i++)
        {
            var message = context[i];
            if (i == context.Count - 1)
            {
                var content = template.Replace(ContentPlaceholder, message.Content, StringComparison.Ordinal);
                if (options.ChainOfThought)
                {
                    content += ChainOfThoughtInstruction(options.ReasoningWords);
                }

                message = new ChatMessage(ChatRole.User, content);
            }

            // What the server sees is role and content; the training weight of an assistant turn is ours.
            sent.Add(new ChatMessage(message.Role, message.Content));
        }

        return sent;
    }

    private static string LabelList(GenerativeTask task)
    {
        var labels = task.LabelWords ?? LabelAnswerParser.NliLabels;
        return labels.Count == 1 ? labels[0] : string.Join(", ", labels.Take(labels.Count - 1)) + " or " + labels[^1];
    }
}
