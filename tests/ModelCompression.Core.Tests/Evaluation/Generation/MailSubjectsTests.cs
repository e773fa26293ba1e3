using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

/// <summary>The e-mail subject task on hand-written mails, and the promises of the committed slice of the real corpus.</summary>
public sealed class MailSubjectsTests
{
    private const string Plain = "From someone  Thu Aug 22 12:36:23 2002\nReceived: from a (b [1.2.3.4])\n\tby c; Thu, 22 Aug 2002\nFrom: Ann <ann@example.com>\nSubject: Re: FWD: re:  Meeting\n moved to Friday\nContent-Type: text/plain\n\nHi all,\n\n  the meeting   moves.\n-- \nAnn\n";

    [Fact]
    public void The_body_without_headers_gives_the_prompt_and_the_subject_without_prefixes_the_answer()
    {
        var (example, skip) = MailSubjects.FromMail(Plain);

        Assert.Equal(MailSkip.None, skip);
        Assert.Equal(MailSubjects.Instruction + "Hi all, the meeting moves. -- Ann", example!.Prompt);
        Assert.Equal("Meeting moved to Friday", example.Answer);
    }

    [Fact]
    public void The_body_is_cut_to_the_given_length()
    {
        var (example, _) = MailSubjects.FromMail(Plain, bodyCharacters: 12);
        Assert.Equal(MailSubjects.Instruction + "Hi all, the", example!.Prompt); // "Hi all, the " cut at 12, then trimmed
    }

    [Theory]
    [InlineData("From: a\n\nbody", MailSkip.NoSubject)]
    [InlineData("Subject: no body separator", MailSkip.NoSubject)]
    [InlineData("Subject: Re: \n\nbody", MailSkip.EmptySubject)]
    [InlineData("Subject: \n\nbody", MailSkip.EmptySubject)]
    [InlineData("Subject: =?iso-8859-1?Q?Caf=E9?=\n\nbody", MailSkip.EncodedSubject)]
    [InlineData("Subject: Offer\nContent-Type: text/html\n\n<p>Buy</p>", MailSkip.NoTextBody)]
    [InlineData("Subject: Offer\nContent-Transfer-Encoding: base64\n\nQnV5IG5vdw==", MailSkip.NoTextBody)]
    [InlineData("Subject: Offer\n\n \n\t\n", MailSkip.NoTextBody)]
    public void Mails_that_cannot_make_an_example_say_why(string raw, MailSkip reason) =>
        Assert.Equal((null, reason), MailSubjects.FromMail(raw));

    [Fact]
    public void A_subject_over_100_characters_is_left_out()
    {
        Assert.Equal(MailSkip.LongSubject, MailSubjects.FromMail($"Subject: {new string('x', 101)}\n\nbody").Skip);
        Assert.Equal(MailSkip.None, MailSubjects.FromMail($"Subject: {new string('x', 100)}\n\nbody").Skip);
    }

    [Fact]
    public void Of_a_multipart_mail_the_first_plain_text_part_is_the_body_decoded()
    {
        const string raw = "Subject: Parts\nContent-Type: multipart/alternative;\n boundary=\"XYZ\"\n\npreamble\n--XYZ\nContent-Type: text/html\n\n<b>html</b>\n--XYZ\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 au =\nlait =3D good\n--XYZ--\n";

        var (example, _) = MailSubjects.FromMail(raw);

        Assert.Equal(MailSubjects.Instruction + "Café au lait = good", example!.Prompt);
        Assert.Equal(MailSkip.NoTextBody, MailSubjects.FromMail(raw.Replace("text/plain", "text/html", StringComparison.Ordinal)).Skip);
    }

    [Fact]
    public void Build_dedupes_shuffles_with_the_seed_and_splits_test_first()
    {
        var mails = Enumerable.Range(0, 30).Select(i => ($"spam-2/{i:D5}.json", $"Subject: S{i % 25}\n\nBody {i % 25}")).ToList();
        mails.Add(("easy-ham-1/x.json", "Subject: Re:\n\nbody"));
        var sizes = new SplitSizes(Train: 10, Pool: 5, Validation: 3, Test: 4);

        var data = MailSubjects.Build(mails, sizes, seed: 3);
        var reordered = MailSubjects.Build([.. mails.AsEnumerable().Reverse()], sizes, seed: 3);

        Assert.Equal(31, data.Mails);
        Assert.Equal(5, data.Skipped[MailSkip.Duplicate]);
        Assert.Equal(1, data.Skipped[MailSkip.EmptySubject]);
        Assert.Equal((10, 5, 3, 4), (data.Splits.Train.Count, data.Splits.Pool.Count, data.Splits.Validation.Count, data.Splits.Test.Count));
        Assert.Equal(data.Splits.Test, reordered.Splits.Test);
        Assert.Equal(data.Splits.Pool, reordered.Splits.Pool);
        Assert.NotEqual(data.Splits.Test, MailSubjects.Build(mails, sizes, seed: 4).Splits.Test);

        var e = Assert.Throws<CompressionException>(() => MailSubjects.Build(mails, sizes with { Pool = 9 }, seed: 3));
        Assert.Equal(DiagnosticCodes.GeneratedDataTooSmall, e.Code);
        Assert.Contains("25 usable mails of 31", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_corpus_reader_names_a_missing_folder_and_a_bad_record_MC2097()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<CompressionException>(() => MailSubjects.ReadCorpus(Path.Join(dir.Path, "nope")));
        Assert.Equal(DiagnosticCodes.MailCorpusUnreadable, missing.Code);

        Directory.CreateDirectory(Path.Join(dir.Path, "spam-1"));
        File.WriteAllText(Path.Join(dir.Path, "file_list.json"), "[]");
        File.WriteAllText(Path.Join(dir.Path, "spam-1", "b.json"), "{\"id\":\"2\",\"text\":\"Subject: b\\n\\nbody b\"}");
        File.WriteAllText(Path.Join(dir.Path, "spam-1", "a.json"), "{\"id\":\"1\",\"text\":\"Subject: a\\n\\nbody a\"}");
        Assert.Equal([("spam-1/a.json", "Subject: a\n\nbody a"), ("spam-1/b.json", "Subject: b\n\nbody b")], MailSubjects.ReadCorpus(dir.Path));

        var bad = Path.Join(dir.Path, "spam-1", "c.json");
        File.WriteAllText(bad, "{\"id\":\"3\",\n\"text\": 5}");
        var wrongType = Assert.Throws<CompressionException>(() => MailSubjects.ReadCorpus(dir.Path));
        Assert.Equal((DiagnosticCodes.MailCorpusUnreadable, bad), (wrongType.Code, wrongType.Diagnostics[0].File));

        File.WriteAllText(bad, "{\"id\":\"3\",\n\"text\": \"x\"");
        var truncated = Assert.Throws<CompressionException>(() => MailSubjects.ReadCorpus(dir.Path));
        Assert.Equal((bad, 2), (truncated.Diagnostics[0].File, truncated.Diagnostics[0].Line));
    }

    [Fact]
    public void The_committed_slice_of_the_corpus_keeps_the_task_promises()
    {
        var folder = Path.Join(Repo.Root, "tests", "fixtures", "generation", "mail");
        var prompts = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in GeneratedSplitsWriter.SplitFiles)
        {
            var records = GeneratedSplitsWriter.Decode(File.ReadAllBytes(Path.Join(folder, file)));
            Assert.Equal(file == "pool.jsonl" ? 40 : file == "train.jsonl" ? 40 : 20, records.Count);
            foreach (var record in records)
            {
                var (role, prompt) = record[0];
                Assert.Equal("user", role);
                Assert.StartsWith(MailSubjects.Instruction, prompt, StringComparison.Ordinal);
                var body = prompt[MailSubjects.Instruction.Length..];
                Assert.InRange(body.Length, 1, MailSubjects.DefaultBodyCharacters);
                Assert.DoesNotMatch(@"\s\s|\n", body);
                Assert.True(prompts.Add(prompt), $"{file}: a prompt repeats.");
                Assert.Equal(file == "pool.jsonl" ? 1 : 2, record.Count);
                if (record.Count == 2)
                {
                    var subject = record[1].Content;
                    Assert.InRange(subject.Trim().Length, 1, MailSubjects.MaxSubjectCharacters);
                    Assert.False(Regex.IsMatch(subject, "^(re|fwd?):", RegexOptions.IgnoreCase), subject);
                }
            }
        }
    }
}
