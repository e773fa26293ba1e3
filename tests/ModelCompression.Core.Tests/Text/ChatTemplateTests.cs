using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Text;

public sealed class ChatTemplateTests
{
    private const int No = -100;

    private static readonly ChatTemplateOptions Default = new();

    /// <summary>A system message and two turns; the first answer is trained too.</summary>
    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "Be brief."),
        new(ChatRole.User, "Hi"),
        new(ChatRole.Assistant, "Hello."),
        new(ChatRole.User, "2+2?"),
        new(ChatRole.Assistant, "4"),
    ];

    // Byte vocabulary with the default markers: <|system|> 257, <|user|> 258, <|assistant|> 259, <|end|> 260; the rest
    // is ASCII ('\n' 10, 'B' 66, ...).
    private static readonly int[] ConversationIds =
    [
        257, 10, 66, 101, 32, 98, 114, 105, 101, 102, 46, 260, 10, // <|system|>\nBe brief.<|end|>\n        0..12
        258, 10, 72, 105, 260, 10,                                 // <|user|>\nHi<|end|>\n                 13..18
        259, 10, 72, 101, 108, 108, 111, 46, 260, 10,             // <|assistant|>\nHello.<|end|>\n        19..28
        258, 10, 50, 43, 50, 63, 260, 10,                          // <|user|>\n2+2?<|end|>\n               29..36
        259, 10, 52, 260, 10,                                      // <|assistant|>\n4<|end|>\n             37..41
    ];

    private static GenerationTokenizer Bytes() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: Default.Markers));

    [Fact]
    public void The_default_template_renders_the_exact_text()
    {
        var template = new ChatTemplate(Default, Bytes());

        Assert.Equal(
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n4<|end|>\n",
            template.RenderText(Conversation));
        Assert.Equal("<|user|>\nHi<|end|>\n<|assistant|>\n", template.RenderText(Conversation[1..2], generationPrompt: true));
    }

    [Fact]
    public void Training_ids_have_markers_as_single_ids_a_mask_on_assistant_tokens_and_shifted_labels()
    {
        var template = new ChatTemplate(Default, Bytes());

        var sequence = template.RenderForTraining(Conversation, maxLength: 64);

        Assert.Equal(ConversationIds, sequence.Ids);
        Assert.Equal((ChatFit.Whole, 0), (sequence.Fit, sequence.CutTokens));
        // Trained: both answers' content and their "<|end|>\n", nothing else.
        var trained = Enumerable.Range(0, ConversationIds.Length).Where(t => sequence.Trained[t]);
        Assert.Equal([21, 22, 23, 24, 25, 26, 27, 28, 39, 40, 41], trained);
        // label[t] = id[t + 1] where token t + 1 is trained: the model learns each answer from the token before it.
        long[] labels = [.. Enumerable.Repeat((long)No, ConversationIds.Length)];
        labels[20] = 72; labels[21] = 101; labels[22] = 108; labels[23] = 108; labels[24] = 111; labels[25] = 46; labels[26] = 260; labels[27] = 10;
        labels[38] = 52; labels[39] = 260; labels[40] = 10;
        Assert.Equal(labels, sequence.Labels);
    }

    [Fact]
    public void A_prompt_for_generation_is_exactly_what_training_had_before_the_answer()
    {
        var template = new ChatTemplate(Default, Bytes());

        var prompt = template.RenderForGeneration(Conversation[..4], maxLength: 64);

        Assert.Equal(ConversationIds[..39], prompt.Ids); // ... <|assistant|>\n
        Assert.Equal(0, prompt.CutTokens);
        var cut = template.RenderForGeneration(Conversation[..4], maxLength: 5);
        Assert.Equal([63, 260, 10, 259, 10], cut.Ids); // "?<|end|>\n<|assistant|>\n"
        Assert.Equal(34, cut.CutTokens);
    }

    [Fact]
    public void A_weight_0_answer_is_context_only()
    {
        var template = new ChatTemplate(Default, Bytes());
        ChatMessage[] messages = [Conversation[1], Conversation[2] with { Trained = false }, Conversation[3], Conversation[4]];

        var sequence = template.RenderForTraining(messages, maxLength: 64);

        Assert.Equal([26, 27, 28], Enumerable.Range(0, sequence.Ids.Length).Where(t => sequence.Trained[t]));
        Assert.Equal(ChatFit.NothingToTrain, template.RenderForTraining(messages[..1], 64).Fit);
        Assert.Equal(ChatFit.NothingToTrain, template.RenderForTraining(messages[..2], 64).Fit);
    }

    [Fact]
    public void Too_long_conversations_lose_their_start_and_keep_the_last_answer_with_its_prompt()
    {
        var template = new ChatTemplate(Default, Bytes());

        var cut = template.RenderForTraining(Conversation, maxLength: 10);
        var tight = template.RenderForTraining(Conversation, maxLength: 5);
        var tooLong = template.RenderForTraining(Conversation, maxLength: 4);

        Assert.Equal((ChatFit.PromptCut, 32), (cut.Fit, cut.CutTokens));
        Assert.Equal(ConversationIds[32..], cut.Ids);
        Assert.Equal([7, 8, 9], Enumerable.Range(0, 10).Where(t => cut.Trained[t])); // the first answer was cut away
        Assert.Equal([No, No, No, No, No, No, 52, 260, 10, No], cut.Labels);
        Assert.Equal(ChatFit.PromptCut, tight.Fit);
        Assert.Equal(ConversationIds[37..], tight.Ids); // <|assistant|>\n4<|end|>\n
        Assert.Equal((ChatFit.AnswerTooLong, 0), (tooLong.Fit, tooLong.Ids.Length));
    }

    [Fact]
    public void Rendering_many_counts_how_each_fared_and_warns_MC2070_naming_the_dropped()
    {
        var template = new ChatTemplate(Default, Bytes());
        ChatRecord[] records =
        [
            new([Conversation[1], Conversation[2]], "a.jsonl", 1),                                          // 21 tokens
            new([Conversation[1], new ChatMessage(ChatRole.Assistant, new string('x', 40))], "a.jsonl", 2), // answer 44 tokens
            new(Conversation, "a.jsonl", 3),                                                                // 42 tokens
            new([Conversation[1]], "a.jsonl", 4),                                                           // no answer
        ];

        var rendering = template.RenderAll(records, maxLength: 30);

        Assert.Equal((1, 1, 1), (rendering.Whole, rendering.PromptCut, rendering.NothingToTrain));
        Assert.Equal([1, 3], rendering.Records.Select(r => r.Line));
        Assert.Equal(2, rendering.Sequences.Count);
        Assert.Equal([2], rendering.AnswerTooLong.Select(r => r.Line));
        var warning = rendering.DroppedWarning(30)!;
        Assert.Equal((DiagnosticCodes.ChatAnswerTooLong, DiagnosticSeverity.Warning, "a.jsonl", 2), (warning.Code, warning.Severity, warning.File, warning.Line));
        Assert.Contains("a.jsonl:2", warning.Message, StringComparison.Ordinal);
        Assert.Null(template.RenderAll(records[..1], 30).DroppedWarning(30));
    }

    [Fact]
    public void Tiktoken_and_SentencePiece_encode_markers_as_their_ids_and_content_as_text()
    {
        var cl100k = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Tiktoken, "cl100k_base", Default.Markers));
        var sentencePiece = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model"), Default.Markers));

        foreach (var tokenizer in new[] { cl100k, sentencePiece })
        {
            var template = new ChatTemplate(Default, tokenizer);
            var ids = template.RenderForTraining(Conversation, 256).Ids;
            var markers = Default.Markers.Select(m => tokenizer.SpecialTokens[m]).ToHashSet();

            // 5 messages: 5 start markers and 5 <|end|>, each one id.
            Assert.Equal(10, ids.Count(markers.Contains));
            Assert.Equal(5, ids.Count(id => id == tokenizer.SpecialTokens["<|end|>"]));
            Assert.Equal(template.RenderForGeneration(Conversation[..4], 256).Ids, ids[..template.RenderForGeneration(Conversation[..4], 256).Ids.Length]);
            Assert.Equal(tokenizer.Encode("Hello."), ids.SkipWhile(id => id != tokenizer.SpecialTokens["<|assistant|>"]).Skip(1 + tokenizer.Encode("\n").Count).Take(tokenizer.Encode("Hello.").Count));
        }

        // cl100k ids (js-tiktoken 1.0.21): "\n" 198, "Hello" 9906, "." 13.
        Assert.Equal([100_279, 198, 9906, 13, 100_280, 198], new ChatTemplate(Default, cl100k).RenderForTraining(Conversation[1..3], 64).Ids[^6..]);
        // The SentencePiece fixture has the markers as user-defined pieces 4-7: they keep those ids.
        Assert.Equal([4, 5, 6, 7], Default.Markers.Select(m => sentencePiece.SpecialTokens[m]));
    }

    [Fact]
    public void Character_and_compact_vocabularies_built_from_the_templates_texts_cover_every_rendered_id()
    {
        var records = ChatReader.Read(ChatFixtures.File("chat.jsonl"));
        var all = records.Labelled.Concat(records.Unlabelled).ToList();
        var texts = ChatTemplate.Texts(Default, all).ToList();

        Assert.Contains("\n", texts);
        Assert.DoesNotContain(texts, t => t.Contains("<|", StringComparison.Ordinal)); // markers are specials, not text
        foreach (var kind in new[] { GenerationTokenizerKind.Character, GenerationTokenizerKind.Gpt2 })
        {
            var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, Specials: Default.Markers, Compact: kind == GenerationTokenizerKind.Gpt2), texts);
            var template = new ChatTemplate(Default, tokenizer);
            foreach (var record in all)
            {
                var ids = record.HasAnswer ? template.RenderForTraining(record.Messages, 256).Ids : template.RenderForGeneration(record.Prompt, 256).Ids;
                Assert.DoesNotContain(1, ids); // both vocabularies number 'unknown' 1
                Assert.Equal(template.RenderText(record.Messages, !record.HasAnswer), tokenizer.Decode(ids, includeSpecials: true));
            }
        }
    }

    [Fact]
    public void Bad_options_are_named()
    {
        var problems = new ChatTemplateOptions { User = "<|user|>\n", Assistant = "{content}<|end|>", Markers = ["<|end|>", "<|end|>"] }.Problems();

        Assert.Equal(3, problems.Count);
        Assert.Contains("user template must hold {content} exactly once; it holds it 0 times", problems[0], StringComparison.Ordinal);
        Assert.Contains("must start with the generation prompt", problems[1], StringComparison.Ordinal);
        Assert.Contains("distinct", problems[2], StringComparison.Ordinal);
        Assert.Empty(Default.Problems());
        Assert.Throws<ArgumentException>(() => new ChatTemplate(Default with { System = "no placeholder" }, Bytes()));
    }
}
