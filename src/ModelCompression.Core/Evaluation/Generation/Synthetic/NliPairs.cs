using System.Globalization;

namespace ModelCompression.Evaluation;

/// <summary>
/// Templated natural-language-inference pairs over generated facts. The premise states one fact
/// ("Ana has 4 red cups in the kitchen."); the hypothesis follows from it (entailment), is ruled out by it
/// (contradiction), or is about something the premise does not say (neutral). The label is chosen by the example's
/// index in its split (index mod 3 over <see cref="LabelAnswerParser.NliLabels"/>), so every split is balanced to
/// within one example, and the split is shuffled afterwards.
/// <code>
/// Premise: Ana has 4 red cups in the kitchen.
/// Hypothesis: Ana has no cups.
/// entailment, neutral or contradiction?
/// </code>
/// The answer is the label word alone.
/// </summary>
public sealed class NliPairs : IExampleGenerator
{
    private static readonly string[] Names =
        ["Ana", "Ben", "Cara", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kim", "Leo", "Mia", "Ned", "Olga", "Paul"];

    private static readonly string[] Objects = ["cups", "books", "pens", "hats", "boxes", "chairs", "lamps", "shoes", "bags", "plates"];

    private static readonly string[] Colours = ["red", "blue", "green", "black", "white", "yellow"];

    private static readonly string[] Places = ["kitchen", "garden", "office", "garage", "attic", "car", "shop", "school"];

    private static readonly string[] Pets = ["dog", "cat", "parrot", "rabbit", "horse"];

    private static readonly string[] Days = ["Monday", "Tuesday", "Friday", "Sunday", "week", "year"];

    private static readonly string[] PlaceWords = ["large", "small", "clean", "cold", "old", "new"];

    /// <inheritdoc />
    public string Name => "nli";

    /// <inheritdoc />
    public GeneratedExample Make(Random random, int index)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        var name = Pick(random, Names);
        var things = Pick(random, Objects);
        var colour = Pick(random, Colours);
        var place = Pick(random, Places);
        var count = random.Next(2, 10);
        var premise = $"{name} has {count} {colour} {things} in the {place}.";
        var label = LabelAnswerParser.NliLabels[index % 3];
        var hypothesis = label switch
        {
            "entailment" => random.Next(4) switch
            {
                0 => $"{name} has {count} {things}.",
                1 => $"There are {things} in the {place}.",
                2 => $"{name} has some {colour} {things}.",
                _ => $"{name} has more than {random.Next(1, count)} {things}.",
            },
            "contradiction" => random.Next(4) switch
            {
                0 => $"{name} has {Other(random, count)} {colour} {things} in the {place}.",
                1 => $"{name} has no {things}.",
                2 => $"The {things} {name} has in the {place} are all {Pick(random, Colours, colour)}.",
                _ => $"{name} has fewer than {random.Next(2, count + 1)} {things}.",
            },
            _ => random.Next(4) switch
            {
                0 => $"{name} also has a {Pick(random, Pets)}.",
                1 => $"{name} bought the {things} last {Pick(random, Days)}.",
                2 => $"{Pick(random, Names, name)} has {count} {colour} {things}.",
                _ => $"The {place} is {Pick(random, PlaceWords)}.",
            },
        };
        return new GeneratedExample(string.Create(CultureInfo.InvariantCulture, $"Premise: {premise}\nHypothesis: {hypothesis}\nentailment, neutral or contradiction?"), label);
    }

    private static string Pick(Random random, string[] words, string? except = null)
    {
        while (true)
        {
            var word = words[random.Next(words.Length)];
            if (!string.Equals(word, except, StringComparison.Ordinal))
            {
                return word;
            }
        }
    }

    private static int Other(Random random, int count)
    {
        while (true)
        {
            var other = random.Next(2, 10);
            if (other != count)
            {
                return other;
            }
        }
    }
}
